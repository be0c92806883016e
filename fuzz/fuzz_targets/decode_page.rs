//! Feeds arbitrary bytes and status codes to the response decoder and the
//! page scanners: nothing may panic, and the token may never come back out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_exporter::collector::seen::SeenEvents;
use whatsapp_exporter::collector::{TargetState, Walk, activities, message_history};
use whatsapp_exporter::graph::client::{decode_response, decode_response_into};
use whatsapp_exporter::graph::model::{Activity, MessageHistory, Page, Text};
use whatsapp_exporter::graph::paging::PageVisitor;
use whatsapp_exporter::secret::AccessToken;

/// Scans a page into a target's state, as the driver does.
struct Rescan<'a> {
    st: &'a mut TargetState,
    walk: &'a Walk,
}

impl PageVisitor<MessageHistory> for Rescan<'_> {
    type Out = usize;

    fn visit<S: Text>(&mut self, page: &Page<MessageHistory<S>>) -> usize {
        message_history::scan_page(page, self.st, self.walk).new
    }
}

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
            let mut rescan = Rescan {
                st: &mut st,
                walk: &walk,
            };
            let (new, _) =
                decode_response_into::<MessageHistory, _>(status, body, &token, &mut rescan)
                    .expect("decodes as owned did");
            assert_eq!(new, 0);
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
