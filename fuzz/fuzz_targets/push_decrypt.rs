//! Safe-mode decryption of arbitrary ciphertexts (as base64, as WeChat sends them) and of
//! arbitrary `<Encrypt>` text: refused with a reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxlink::wechat::crypto::MessageCrypto;

fuzz_target!(|data: &[u8]| {
    use base64::Engine;
    let crypto = MessageCrypto::new(&"A".repeat(43)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let _ = crypto.decrypt(&b64, "wx134c8103faa5a59e");
    let _ = crypto.decrypt(&String::from_utf8_lossy(data), "wx134c8103faa5a59e");
});
