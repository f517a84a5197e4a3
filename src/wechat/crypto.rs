//! WeChat's push signatures and message encryption (safe and compatible mode).
//!
//! Signature: hex SHA-1 of the lexicographically sorted, concatenated strings. Encryption:
//! AES-256-CBC with the key from the 43-character EncodingAESKey, IV = the key's first 16
//! bytes, PKCS#7 padding to a 32-byte block (not AES's 16), and the plaintext
//! `16 random bytes || u32 big-endian length || message || appid`.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

const PAD_BLOCK: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("EncodingAESKey must be 43 base64 characters")]
    BadKey,
    #[error("Encrypt is not valid base64")]
    BadBase64,
    #[error("ciphertext length is not a multiple of the AES block")]
    BadLength,
    #[error("padding is not WeChat's 32-byte PKCS#7")]
    BadPadding,
    #[error("decrypted message is truncated or its length field is wrong")]
    BadFraming,
    #[error("message is for another appid")]
    WrongAppId,
    #[error("message is not UTF-8")]
    NotUtf8,
}

/// `hex(sha1(concat(sort(parts))))`: the push signature (3 parts) and msg_signature (4).
pub fn signature(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut h = Sha1::new();
    for p in sorted {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Compares a received signature with the expected one in constant time.
pub fn signature_matches(expected: &str, received: &str) -> bool {
    expected.len() == received.len() && bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// The 32-byte key of one EncodingAESKey.
#[derive(Clone)]
pub struct MessageCrypto {
    key: [u8; 32],
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageCrypto(…)")
    }
}

impl MessageCrypto {
    /// Real keys have non-zero trailing bits, which a strict base64 decoder refuses.
    pub fn new(encoding_aes_key: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let lenient = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self { key })
    }

    /// Decrypts an `<Encrypt>` value and checks the trailing appid.
    pub fn decrypt(&self, encrypt_b64: &str, appid: &str) -> Result<String, CryptoError> {
        let data = STANDARD
            .decode(encrypt_b64.trim())
            .map_err(|_| CryptoError::BadBase64)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::BadLength);
        }
        let dec = Aes256CbcDec::new_from_slices(&self.key, &self.key[..16])
            .map_err(|_| CryptoError::BadKey)?;
        let mut data = data;
        let plain = dec
            .decrypt_padded::<NoPadding>(&mut data)
            .map_err(|_| CryptoError::BadLength)?;
        let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0
            || pad > PAD_BLOCK
            || pad > plain.len()
            || !plain[plain.len() - pad..]
                .iter()
                .all(|&b| b as usize == pad)
        {
            return Err(CryptoError::BadPadding);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CryptoError::BadFraming);
        }
        let len = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
        let rest = &body[20..];
        if len > rest.len() {
            return Err(CryptoError::BadFraming);
        }
        let (msg, their_appid) = rest.split_at(len);
        if !bool::from(their_appid.ct_eq(appid.as_bytes())) {
            return Err(CryptoError::WrongAppId);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotUtf8)
    }

    /// Encrypts a message for WeChat with the given 16-byte random prefix.
    pub fn encrypt_with_prefix(&self, msg: &str, appid: &str, random: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + msg.len() + appid.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let enc = Aes256CbcEnc::new_from_slices(&self.key, &self.key[..16])
            .expect("32-byte key, 16-byte iv");
        let len = plain.len();
        let cipher = enc
            .encrypt_padded::<NoPadding>(&mut plain, len)
            .expect("padded to whole blocks above");
        STANDARD.encode(cipher)
    }

    /// Encrypts with a fresh random prefix.
    pub fn encrypt(&self, msg: &str, appid: &str) -> String {
        let mut random = [0u8; 16];
        rand::RngExt::fill(&mut rand::rng(), &mut random);
        self.encrypt_with_prefix(msg, appid, &random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1_and_v2_plain_signatures() {
        assert_eq!(
            signature(&["test", "1410685589", "test"]),
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        );
        assert_eq!(
            signature(&["AAAAA", "1714037059", "486452656"]),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
        assert!(signature_matches("abc", "abc"));
        assert!(!signature_matches("abc", "abd"));
        assert!(!signature_matches("abc", "ab"));
    }

    const V3_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    #[test]
    fn v3_safe_mode_receive() {
        assert_eq!(
            signature(&["spamtest", "1409735669", "1320562132", V3_ENCRYPT]),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
        let c = MessageCrypto::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let xml = c.decrypt(V3_ENCRYPT, "wx2c2769f8efd9abc2").unwrap();
        assert_eq!(
            xml,
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
        );
        assert_eq!(
            c.decrypt(V3_ENCRYPT, "wx0000000000000000"),
            Err(CryptoError::WrongAppId)
        );
    }

    const V4_ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";

    #[test]
    fn v4_safe_mode_receive_and_encrypted_reply() {
        assert_eq!(
            signature(&["AAAAA", "1715943329", "1590219412", V4_ENCRYPT]),
            "6c12a4205838198b8fa631b3220723bb07f1015c"
        );
        let c = MessageCrypto::new(&"A".repeat(43)).unwrap();
        let xml = c.decrypt(V4_ENCRYPT, "wx134c8103faa5a59e").unwrap();
        assert!(
            xml.contains("<Event><![CDATA[debug_demo]]></Event>"),
            "{xml}"
        );
        assert!(
            xml.contains("<debug_str><![CDATA[hello world]]></debug_str>"),
            "{xml}"
        );

        let reply = c.encrypt_with_prefix(
            "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>",
            "wx134c8103faa5a59e",
            b"999951349e8ee746",
        );
        assert_eq!(
            reply,
            "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"
        );
        assert_eq!(
            signature(&["AAAAA", "1713424427", "415670741", &reply]),
            "03e0812039325c2712ef5f0f980fd14c70d6e307"
        );
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let c = MessageCrypto::new(&"A".repeat(43)).unwrap();
        assert_eq!(c.decrypt("not base64!!", "wx"), Err(CryptoError::BadBase64));
        assert_eq!(c.decrypt("AAAA", "wx"), Err(CryptoError::BadLength));
        assert_eq!(c.decrypt("", "wx"), Err(CryptoError::BadLength));
        assert!(MessageCrypto::new("short").is_err());
        // 32 zero bytes decrypt to garbage whose padding is wrong (or framing, never a panic).
        assert!(c.decrypt(&STANDARD.encode([0u8; 32]), "wx").is_err());
    }

    proptest! {
        #[test]
        fn encrypt_then_decrypt_round_trips(
            key in proptest::collection::vec(any::<u8>(), 32),
            msg in "\\PC{0,300}",
            appid in "wx[0-9a-f]{16}",
        ) {
            let ek = STANDARD.encode(&key);
            let c = MessageCrypto::new(&ek[..43]).unwrap();
            let enc = c.encrypt(&msg, &appid);
            prop_assert_eq!(c.decrypt(&enc, &appid).unwrap(), msg);
        }

        #[test]
        fn decrypt_never_panics_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = MessageCrypto::new(&"A".repeat(43)).unwrap();
            let _ = c.decrypt(&STANDARD.encode(&data), "wx134c8103faa5a59e");
        }
    }
}
