//! The push XML reader on arbitrary text: an answer (Ok or a reason), never a panic, and
//! whatever parses also yields an envelope or a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxlink::push::event::{Envelope, PushEvent};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(root) = wxlink::push::xml::parse(&text) {
        let _ = root.to_json();
        if let Ok(env) = Envelope::read(&root) {
            let _ = PushEvent::classify(&root, &env);
        }
    }
});
