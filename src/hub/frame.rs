//! The wire's framing: newline-terminated lines of at most [`MAX_FRAME`] bytes, cut out
//! of whatever chunks the socket delivers, and the one way a line is written.
//!
//! Only bytes are handled here (no UTF-8, no JSON): a box controls every byte, so the
//! decoder never grows past its cap, never panics, and after one oversized line yields
//! nothing more (the connection is closed; resynchronising inside a hostile stream
//! would be guesswork).

use std::io;
use std::os::unix::net::UnixStream;

/// The longest line either side sends, without its `\n`.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A line grew past the cap before its `\n` arrived.
    TooLarge,
}

/// Splits a byte stream into lines. Blank lines (only ASCII whitespace) are skipped.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
    dead: bool,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME)
    }
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            dead: false,
        }
    }

    /// Bytes of an unfinished line held back.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// After [`FrameError::TooLarge`]: nothing more comes out.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Feed `data`; complete lines (and at most one error, the last thing ever pushed)
    /// are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Result<Vec<u8>, FrameError>>) {
        while !self.dead && !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if self.buf.len() + i > self.max {
                        self.die(out);
                        return;
                    }
                    self.buf.extend_from_slice(&data[..i]);
                    let line = std::mem::take(&mut self.buf);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        out.push(Ok(line));
                    }
                    data = &data[i + 1..];
                }
                None => {
                    if self.buf.len() + data.len() > self.max {
                        self.die(out);
                        return;
                    }
                    self.buf.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    fn die(&mut self, out: &mut Vec<Result<Vec<u8>, FrameError>>) {
        self.dead = true;
        self.buf = Vec::new();
        out.push(Err(FrameError::TooLarge));
    }
}

/// Write all of `bytes` to `sock` without raising SIGPIPE when the other side has gone
/// (kanibako keeps SIGPIPE's default so `… | head` ends quietly): a closed peer is an
/// error here, never the death of the hub. The socket's send timeout applies.
pub fn send_all(sock: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        match send(sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out);
        }
        out
    }

    #[test]
    fn a_frame_split_at_every_byte_position_comes_out_whole() {
        let wire = b"{\"v\":1,\"id\":7,\"op\":\"ping\"}\n{\"v\":1,\"id\":8,\"op\":\"list\"}\n";
        for cut in 0..=wire.len() {
            let out = decode(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(
                out,
                vec![
                    Ok(b"{\"v\":1,\"id\":7,\"op\":\"ping\"}".to_vec()),
                    Ok(b"{\"v\":1,\"id\":8,\"op\":\"list\"}".to_vec())
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn several_frames_in_one_chunk_and_blank_lines() {
        let out = decode(&[b"a\n\n  \r\nb\nc"]);
        assert_eq!(out, vec![Ok(b"a".to_vec()), Ok(b"b".to_vec())]);
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.push(b"par", &mut out);
        assert_eq!(d.buffered(), 3);
        d.push(b"tial\n", &mut out);
        assert_eq!(out, vec![Ok(b"partial".to_vec())]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn exactly_the_cap_is_accepted_one_more_is_refused_and_kills_the_decoder() {
        let mut line = vec![b'x'; MAX_FRAME];
        line.push(b'\n');
        assert_eq!(decode(&[&line]), vec![Ok(vec![b'x'; MAX_FRAME])]);

        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.push(&vec![b'x'; MAX_FRAME], &mut out);
        assert!(out.is_empty());
        d.push(b"y", &mut out);
        assert_eq!(out, vec![Err(FrameError::TooLarge)]);
        assert!(d.is_dead());
        assert_eq!(d.buffered(), 0, "the oversized line is not kept");
        d.push(b"\n{\"op\":\"ping\"}\n", &mut out);
        assert_eq!(out.len(), 1, "nothing after TooLarge");
    }

    #[test]
    fn an_oversized_line_in_one_chunk_is_refused_before_copying() {
        let mut big = vec![b'z'; MAX_FRAME + 1];
        big.push(b'\n');
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.push(b"ok\n", &mut out);
        d.push(&big, &mut out);
        assert_eq!(out, vec![Ok(b"ok".to_vec()), Err(FrameError::TooLarge)]);
    }

    #[test]
    fn writing_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let err = send_all(&a, b"x\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_small_cap_is_honoured() {
        let mut d = LineDecoder::new(4);
        let mut out = Vec::new();
        d.push(b"1234\n12345\n", &mut out);
        assert_eq!(out, vec![Ok(b"1234".to_vec()), Err(FrameError::TooLarge)]);
    }
}
