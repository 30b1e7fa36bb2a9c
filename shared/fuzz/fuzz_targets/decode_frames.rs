//! Feeds arbitrary bytes, in arbitrary chunks, to the frame decoder and the message decoders
//! and drives the control state machine with whatever decodes. Nothing may panic.
//!
//! Run with a nightly toolchain: `cargo fuzz run decode_frames` in `shared/`.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shared::control::{Control, RuntimeSettings};
use shared::frame::{FrameDecoder, decode_body};
use shared::wire::{CallFrame, ControlFrame};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let chunk = usize::from(split).max(1);
    let now = Instant::now();
    let mut ctl = Control::runtime(
        RuntimeSettings {
            expected_connector_id: "c1".into(),
            versions: shared::version::SUPPORTED,
            heartbeat_interval: Duration::from_secs(5),
            unix_time_ms: 0,
            replica: String::new(),
        },
        now,
    );
    let mut dec = FrameDecoder::new(64 * 1024);
    for part in rest.chunks(chunk) {
        dec.extend(part);
        while let Ok(Some(body)) = dec.next_frame() {
            if let Ok(f) = decode_body::<ControlFrame>(&body) {
                let _ = ctl.handle_frame(f, now);
                while ctl.poll_transmit().is_some() {}
                while ctl.poll_event().is_some() {}
            }
            if let Ok(f) = decode_body::<CallFrame>(&body) {
                if let Some(shared::wire::call_frame::Kind::Request(r)) = f.kind {
                    let _ = shared::call::Call::try_from(r);
                }
            }
        }
    }
    let _ = dec.finish();
});
