//! The gRPC codec of every generated client and server: prost messages, decoded from one
//! contiguous slice.
//!
//! tonic collects a whole message into its receive buffer before it asks the codec to decode it,
//! and hands it over as a `DecodeBuf`, a view of that buffer. tonic-prost's `ProstCodec` decodes
//! through the view: every varint and every field advances a `BytesMut` (pointer and capacity
//! updates) behind a `Take` per nested message, and prost cannot use its one-slice fast paths.
//! A perf profile of `cmksim bench ingest` (session 14) had `decode_varint` at 5.3% of the
//! end-to-end CPU and `BytesMut::advance_unchecked` at 4.3%, for messages of thousands of small
//! cells (a batch's records). [`SliceCodec`] decodes the same bytes from `&[u8]` and then
//! consumes them from the buffer: the same messages, the same errors (a decode error is
//! `INTERNAL` with prost's text, as tonic-prost answers), the encoder is tonic-prost's own.
//!
//! `build.rs` names this codec for every service (`codec_path`), so no call site changes.

use std::marker::PhantomData;

use prost::bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// `application/grpc+proto` through prost, decoding each message from one slice.
#[derive(Debug, Clone)]
pub struct SliceCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for SliceCodec<T, U> {
    fn default() -> Self {
        SliceCodec {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for SliceCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SliceDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        SliceDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes a `U` from the message's bytes as one slice.
#[derive(Debug, Clone)]
pub struct SliceDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for SliceDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        Ok(Some(decode_whole(buf)?))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes a `U` from all of `buf` and consumes it. A buffer whose bytes are not one slice
/// (tonic's never is; any `Buf` may be) is gathered into one first.
fn decode_whole<U: Message + Default, B: Buf>(buf: &mut B) -> Result<U, Status> {
    let len = buf.remaining();
    let message = if buf.chunk().len() == len {
        let message = U::decode(buf.chunk());
        buf.advance(len);
        message
    } else {
        U::decode(buf.copy_to_bytes(len).as_ref())
    };
    // As tonic-prost maps it (gRPC's status code guide: a parse failure is INTERNAL).
    message.map_err(|e| Status::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::v1 as sb;
    use prost::bytes::{Bytes, BytesMut};

    fn batch() -> sb::AppendRequest {
        let cell = |name: &str, kind| sb::Column {
            name: name.to_string(),
            value: Some(sb::Value { kind: Some(kind) }),
        };
        sb::AppendRequest {
            workspace_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w".to_string(),
            table: "Heartbeat".to_string(),
            records: (0..300i64)
                .map(|i| sb::Record {
                    time_unix_ms: 1_700_000_000_000 + i * 1_000,
                    columns: vec![
                        cell("Computer", sb::value::Kind::StringValue(format!("host-{i}"))),
                        cell("Count", sb::value::Kind::LongValue(i - 150)),
                        cell("Ratio", sb::value::Kind::RealValue(i as f64 / 7.0)),
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn a_contiguous_buffer_decodes_to_what_prost_decodes_and_is_consumed() {
        let bytes = batch().encode_to_vec();
        let mut buf: &[u8] = &bytes;
        let decoded: sb::AppendRequest = decode_whole(&mut buf).expect("decodes");
        assert_eq!(decoded, batch());
        assert_eq!(buf.remaining(), 0, "the message's bytes are consumed");
    }

    #[test]
    fn a_chained_buffer_decodes_the_same() {
        let bytes = batch().encode_to_vec();
        let (front, back) = bytes.split_at(bytes.len() / 3);
        let mut chain = Bytes::copy_from_slice(front).chain(Bytes::copy_from_slice(back));
        assert!(chain.chunk().len() < chain.remaining(), "two chunks");
        let decoded: sb::AppendRequest = decode_whole(&mut chain).expect("decodes");
        assert_eq!(decoded, batch());
        assert_eq!(chain.remaining(), 0);
    }

    #[test]
    fn a_broken_message_is_internal_with_prosts_text() {
        let mut bytes = BytesMut::from(batch().encode_to_vec().as_slice());
        bytes.truncate(bytes.len() - 5);
        let expected = sb::AppendRequest::decode(bytes.as_ref())
            .expect_err("truncated")
            .to_string();
        let mut buf = bytes.freeze();
        let status = decode_whole::<sb::AppendRequest, _>(&mut buf).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), expected);
    }
}
