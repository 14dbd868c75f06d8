//! The `/comity/exchange/2.0.0` stream codec: one request frame, one response frame, each the
//! whole rest of its half-stream, each refused past an explicit size limit.
//!
//! Frames stay raw bytes here: the exchange service decodes and verifies them, so a malformed
//! message can be answered with a reason instead of a silently reset stream.

use std::io;
use std::sync::Mutex;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

#[derive(Clone, Debug)]
pub struct FrameCodec {
    pub max_request: usize,
    pub max_response: usize,
    /// Room reserved for a response before reading it: the usual size of a large response,
    /// so that it is read without growing (and copying) its buffer again and again.
    pub response_capacity: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_request: comity_protocol::limits::MAX_REQUEST_FRAME,
            max_response: comity_protocol::limits::MAX_RESPONSE_FRAME,
            response_capacity: 0,
        }
    }
}

/// Large response buffers given back by their readers (evidence chunks), reused for the next
/// responses: a fresh megabyte from the allocator costs page faults and zeroing every time.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Spare buffers kept at most (a few chunks' worth of memory).
const MAX_SPARE: usize = 16;
/// Smallest buffer worth keeping.
const MIN_SPARE: usize = 256 << 10;

/// Gives a frame's buffer back for reuse once its bytes are no longer needed.
pub fn recycle(mut frame: Vec<u8>) {
    if frame.capacity() < MIN_SPARE {
        return;
    }
    // Kept initialised to its capacity, so that the next read needs no zeroing.
    frame.resize(frame.capacity(), 0);
    let mut spare = SPARE.lock().expect("spare buffers lock");
    if spare.len() < MAX_SPARE {
        spare.push(frame);
    }
}

/// A buffer of at least `len` initialised bytes: a spare one if there is one.
pub fn buffer(len: usize) -> Vec<u8> {
    let spare = SPARE.lock().expect("spare buffers lock").pop();
    match spare {
        Some(buf) if buf.len() >= len => buf,
        _ => vec![0u8; len],
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    capacity: usize,
) -> io::Result<Vec<u8>> {
    let frame = if capacity == 0 {
        let mut frame = Vec::new();
        // Read one byte past the limit to tell "exactly at the limit" from "over it".
        io.take(max as u64 + 1).read_to_end(&mut frame).await?;
        frame
    } else {
        // Into an initialised buffer, reused when possible; it grows up to one byte past the
        // limit, to tell "exactly at the limit" from "over it".
        let mut frame = buffer(capacity.min(max + 1));
        let mut filled = 0;
        loop {
            if filled == frame.len() {
                let grown = (frame.len() * 2).min(max + 1);
                if grown == frame.len() {
                    break;
                }
                frame.resize(grown, 0);
            }
            let n = io.read(&mut frame[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        frame.truncate(filled);
        frame
    };
    if frame.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame exceeds the {max}-byte limit"),
        ));
    }
    if frame.is_empty() {
        // What a peer that refused our frame (or crashed) leaves behind: never a message.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty frame: the peer closed the stream without a message",
        ));
    }
    Ok(frame)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    frame: &[u8],
    max: usize,
) -> io::Result<()> {
    if frame.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {max}-byte limit",
                frame.len()
            ),
        ));
    }
    io.write_all(frame).await?;
    io.close().await
}

impl Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request, 0).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response, self.response_capacity).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let written = write_frame(io, &res, self.max_response).await;
        recycle(res);
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn frames_at_the_limit_pass_and_over_it_fail() {
        let mut codec = FrameCodec {
            max_request: 8,
            max_response: 8,
            response_capacity: 4,
        };
        let proto = StreamProtocol::new("/t");
        let ok = codec
            .read_request(&proto, &mut Cursor::new(vec![1u8; 8]))
            .await
            .unwrap();
        assert_eq!(ok.len(), 8);
        let err = codec
            .read_request(&proto, &mut Cursor::new(vec![1u8; 9]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("8-byte limit"));
        let empty = codec
            .read_response(&proto, &mut Cursor::new(Vec::new()))
            .await
            .unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn reused_buffers_hold_only_the_new_frame() {
        let mut codec = FrameCodec {
            max_request: 8,
            max_response: 1 << 20,
            response_capacity: 1 << 20,
        };
        let proto = StreamProtocol::new("/t");
        // Buffers full of an old chunk's bytes, given back for reuse.
        for _ in 0..3 {
            recycle(vec![0xAAu8; 1 << 20]);
        }
        let frame = codec
            .read_response(&proto, &mut Cursor::new(b"new frame".to_vec()))
            .await
            .unwrap();
        assert_eq!(frame, b"new frame");
        let full = codec
            .read_response(&proto, &mut Cursor::new(vec![7u8; 1 << 20]))
            .await
            .unwrap();
        assert!(full.len() == 1 << 20 && full.iter().all(|b| *b == 7));
        let over = codec
            .read_response(&proto, &mut Cursor::new(vec![7u8; (1 << 20) + 1]))
            .await
            .unwrap_err();
        assert!(over.to_string().contains("limit"));
    }
}
