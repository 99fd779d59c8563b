//! The local link as a device or assistant reads it off TCP: a byte stream
//! of 4-byte big-endian lengths (at most `MAX_FRAME`) each followed by one
//! frame in CBOR, then what a receiver does with a frame before acting on
//! it (naming it for the trace, checking a hand-over item). The codec is
//! built as `Link::tcp` builds it and each frame decoded as `LinkRx::recv`
//! decodes it (`ciborium::from_reader` into `Frame`). Must never panic.
#![no_main]

use bytes::BytesMut;
use enrollment_host::frame::{self, Frame};
use enrollment_host::link::MAX_FRAME;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

fuzz_target!(|data: &[u8]| {
    let mut codec = LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
    let mut buf = BytesMut::from(data);
    // At most a few frames per input: each is a separate decode.
    for _ in 0..16 {
        match codec.decode_eof(&mut buf) {
            Ok(Some(bytes)) => receive(&bytes),
            Ok(None) | Err(_) => break,
        }
    }
    // The same bytes as one frame's CBOR, without the length prefix.
    receive(data);
});

fn receive(bytes: &[u8]) {
    let Ok(frame) = ciborium::from_reader::<Frame, _>(bytes) else { return };
    let _ = frame::frame_name(&frame);
    if let Frame::Item(item) = &frame {
        let _ = item.describe();
        let _ = item.check();
    }
    // What crosses the link must cross it again unchanged.
    let mut out = Vec::new();
    if ciborium::into_writer(&frame, &mut out).is_ok() {
        assert_eq!(ciborium::from_reader::<Frame, _>(&out[..]).ok(), Some(frame), "frame round trip");
    }
}
