//! Feeds arbitrary bytes and status codes to the response decoder and the
//! page scanners: nothing may panic, and the token may never come back out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_exporter::collector::seen::SeenEvents;
use whatsapp_exporter::collector::{TargetState, activities, message_history};
use whatsapp_exporter::graph::client::{decode_response, decode_response_into};
use whatsapp_exporter::graph::model::{Activity, MessageHistory};
use whatsapp_exporter::secret::AccessToken;

fuzz_target!(|input: &[u8]| {
    let Some((&status_byte, body)) = input.split_first() else {
        return;
    };
    let status = [200u16, 400, 401, 429, 500, 502][usize::from(status_byte) % 6];
    let token = AccessToken::new("FUZZ-TOKEN-123");
    match decode_response::<MessageHistory>(status, body, &token) {
        Ok(page) => {
            let mut st = TargetState::default();
            let walk = st.begin(0, i64::MAX);
            let _ = message_history::scan_page(&page, &mut st, &walk);
            // Seen again: every event known, in the state it was left in.
            let again = message_history::scan_page(&page, &mut st, &walk);
            assert_eq!(again.new, 0);
            // The borrowed decode (what the client scans) reads it alike.
            let mut rescan = message_history::ScanInto {
                st: &mut st,
                walk: &walk,
            };
            let (tally, _) =
                decode_response_into::<MessageHistory, _>(status, body, &token, &mut rescan)
                    .expect("decodes as owned did");
            assert_eq!(tally.new, 0);
        }
        Err(e) => assert!(!e.to_string().contains("FUZZ-TOKEN-123")),
    }
    if let Ok(page) = decode_response::<Activity>(status, body, &token) {
        let mut seen = SeenEvents::default();
        let _ = activities::scan_page(
            &page,
            &mut seen,
            &mut Default::default(),
            true,
            (0, i64::MAX),
        );
    }
});
