//! Lets gRPC C-core clients (py-spiffe's grpcio, grpc-java, C++) talk to the agent over the
//! Unix socket. Those clients send the socket path as the HTTP/2 `:authority`
//! (`tmp%2Frun%2Fagent.sock`), which is not a valid authority; the `h2` crate under tonic then
//! resets every stream with PROTOCOL_ERROR (hyperium/h2 pull request 487, open). The authority
//! means nothing on a Unix socket, so this layer, between the socket and the HTTP/2 server,
//! rewrites an invalid `:authority` to `localhost` in the client's header blocks.
//!
//! HPACK is stateful: the client's encoder may refer to its earlier headers through the
//! dynamic table, so once a block is rewritten this layer decodes every later header block of
//! the connection (keeping the client's table, `loona-hpack`) and re-encodes each one as
//! literals without indexing, which leaves the server's table empty and both sides consistent.
//! Every other frame, and the bytes the server sends, pass through unchanged.
//!
//! The first header block decides for the whole connection: a client sends one authority on
//! every request of a connection, so when the first block's authority is valid (tonic, Go and
//! the `spiffe` crate send `localhost` or an address) that block's original frames and
//! everything after them are passed through untouched, and the server decodes exactly what the
//! client encoded. Decoding every block costs a Huffman decoder per string: about a fifth of
//! the agent's CPU on a busy fetch path (docs/performance.md, "mtls-agent").

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::transport::server::{Connected, UdsConnectInfo};

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The server's SETTINGS_MAX_FRAME_SIZE (h2's default, which tonic keeps).
const MAX_FRAME: usize = 16_384;
/// Largest frame or header block accepted from a client (h2's own header list limit is 16 KiB;
/// this only bounds what is buffered here).
const MAX_BUFFERED: usize = 1 << 20;
/// What replaces an invalid authority.
const LOCALHOST: &[u8] = b"localhost";

/// A client connection with its header blocks rewritten (module documentation).
pub struct AuthorityFix {
    inner: UnixStream,
    rewriter: Rewriter,
    /// Rewritten bytes not yet read by the server.
    ready: BytesMut,
    eof: bool,
}

impl AuthorityFix {
    /// Wraps an accepted connection.
    pub fn new(inner: UnixStream) -> AuthorityFix {
        AuthorityFix {
            inner,
            rewriter: Rewriter::default(),
            ready: BytesMut::new(),
            eof: false,
        }
    }
}

impl Connected for AuthorityFix {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for AuthorityFix {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready.is_empty() && this.rewriter.passing_through() && !this.eof {
                // Nothing is buffered any more: the client's bytes go straight to the server.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                        // An incomplete frame at the end is passed on for the server to refuse.
                        this.ready.extend_from_slice(&this.rewriter.pending);
                        this.rewriter.pending.clear();
                        continue;
                    }
                    this.rewriter
                        .feed(read.filled(), &mut this.ready)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
            }
        }
    }
}

impl AsyncWrite for AuthorityFix {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A header block being collected (HEADERS then CONTINUATION frames).
struct OpenBlock {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    /// The frames as the client sent them, passed on as they are if the block needs no fix.
    raw: Vec<u8>,
}

/// What the connection's first header block decided (module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// No header block has ended yet.
    #[default]
    Undecided,
    /// The first block's authority was valid: every byte passes through untouched.
    PassThrough,
    /// A block was rewritten: every later block is decoded and re-encoded.
    Rewrite,
}

/// The client-to-server byte stream's state.
#[derive(Default)]
struct Rewriter {
    preface_seen: usize,
    pending: BytesMut,
    decoder: loona_hpack::Decoder<'static>,
    open: Option<OpenBlock>,
    mode: Mode,
}

impl Rewriter {
    /// Whether the bytes of this connection now pass through untouched.
    fn passing_through(&self) -> bool {
        self.mode == Mode::PassThrough && self.pending.is_empty()
    }

    /// Consumes `input`, appending what the server should read to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<(), String> {
        if self.mode == Mode::PassThrough {
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            out.extend_from_slice(input);
            return Ok(());
        }
        if self.preface_seen < PREFACE_LEN {
            let n = (PREFACE_LEN - self.preface_seen).min(input.len());
            out.extend_from_slice(&input[..n]);
            self.preface_seen += n;
            input = &input[n..];
        }
        self.pending.extend_from_slice(input);
        while self.pending.len() >= FRAME_HEADER_LEN {
            let len =
                u32::from_be_bytes([0, self.pending[0], self.pending[1], self.pending[2]]) as usize;
            if len > MAX_BUFFERED {
                return Err(format!("a frame of {len} bytes"));
            }
            if self.pending.len() < FRAME_HEADER_LEN + len {
                break;
            }
            let frame = self.pending.split_to(FRAME_HEADER_LEN + len);
            self.frame(&frame, out)?;
            if self.mode == Mode::PassThrough {
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                break;
            }
        }
        Ok(())
    }

    fn frame(&mut self, frame: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = [frame[5], frame[6], frame[7], frame[8]];
        let mut payload = &frame[FRAME_HEADER_LEN..];
        match kind {
            HEADERS => {
                if flags & PADDED != 0 {
                    let pad = *payload
                        .first()
                        .ok_or("a padded HEADERS frame without length")?
                        as usize;
                    if pad + 1 > payload.len() {
                        return Err("HEADERS padding longer than the frame".into());
                    }
                    payload = &payload[1..payload.len() - pad];
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    if payload.len() < 5 {
                        return Err("a HEADERS frame too short for its priority".into());
                    }
                    let mut p = [0u8; 5];
                    p.copy_from_slice(&payload[..5]);
                    priority = Some(p);
                    payload = &payload[5..];
                }
                let raw = if self.mode == Mode::Undecided {
                    frame.to_vec()
                } else {
                    Vec::new()
                };
                self.open = Some(OpenBlock {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    block: payload.to_vec(),
                    raw,
                });
            }
            CONTINUATION => {
                let undecided = self.mode == Mode::Undecided;
                let open = self
                    .open
                    .as_mut()
                    .ok_or("a CONTINUATION frame without HEADERS")?;
                if open.block.len() + payload.len() > MAX_BUFFERED {
                    return Err("a header block over 1 MiB".into());
                }
                open.block.extend_from_slice(payload);
                if undecided {
                    open.raw.extend_from_slice(frame);
                }
            }
            _ => {
                out.extend_from_slice(frame);
                return Ok(());
            }
        }
        if flags & END_HEADERS != 0 {
            let open = self.open.take().ok_or("END_HEADERS without HEADERS")?;
            self.emit(open, out)?;
        }
        Ok(())
    }

    /// Decodes the block and fixes the authority: the first block of a connection whose
    /// authority needs no fix is passed on as the client sent it and turns rewriting off;
    /// otherwise the block is written as HEADERS (+ CONTINUATION) frames of literals.
    fn emit(&mut self, open: OpenBlock, out: &mut BytesMut) -> Result<(), String> {
        let headers = self
            .decoder
            .decode(&open.block)
            .map_err(|e| format!("HPACK: {e}"))?;
        if self.mode == Mode::Undecided {
            let needs_fix = headers
                .iter()
                .any(|(name, value)| name == b":authority" && !valid_authority(value));
            if !needs_fix {
                self.mode = Mode::PassThrough;
                out.extend_from_slice(&open.raw);
                return Ok(());
            }
            self.mode = Mode::Rewrite;
        }
        let mut block = Vec::with_capacity(open.block.len() + 64);
        for (name, value) in &headers {
            let value: &[u8] = if name == b":authority" && !valid_authority(value) {
                LOCALHOST
            } else {
                value
            };
            literal(&mut block, name, value);
        }
        let mut first = true;
        let mut rest: &[u8] = &block;
        loop {
            let room = if first && open.priority.is_some() {
                MAX_FRAME - 5
            } else {
                MAX_FRAME
            };
            let n = rest.len().min(room);
            let last = n == rest.len();
            let mut flags = if last { END_HEADERS } else { 0 };
            let kind = if first { HEADERS } else { CONTINUATION };
            let mut len = n;
            if first {
                if open.end_stream {
                    flags |= END_STREAM;
                }
                if open.priority.is_some() {
                    flags |= PRIORITY;
                    len += 5;
                }
            }
            let len = u32::try_from(len).map_err(|_| "frame too long")?;
            out.put_slice(&len.to_be_bytes()[1..]);
            out.put_u8(kind);
            out.put_u8(flags);
            out.put_slice(&open.stream);
            if first {
                if let Some(p) = open.priority {
                    out.put_slice(&p);
                }
            }
            out.put_slice(&rest[..n]);
            rest = &rest[n..];
            first = false;
            if last {
                return Ok(());
            }
        }
    }
}

fn valid_authority(value: &[u8]) -> bool {
    hyper::http::uri::Authority::try_from(value).is_ok()
}

/// HPACK "literal header field without indexing, new name" (RFC 7541 6.2.2), no Huffman.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    string(out, name);
    string(out, value);
}

/// An HPACK string literal: 7-bit prefix length (RFC 7541 5.1), then the octets.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(flags);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Splits the rewritten stream into frames and decodes their header blocks in order.
    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode_all(bytes: &[u8]) -> Vec<(u8, Headers)> {
        let mut decoder = loona_hpack::Decoder::new();
        let mut rest = &bytes[PREFACE_LEN..];
        let mut out = Vec::new();
        let mut block = Vec::new();
        let mut first_kind = 0;
        while !rest.is_empty() {
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            let (kind, flags) = (rest[3], rest[4]);
            let mut payload = &rest[9..9 + len];
            if kind == HEADERS {
                first_kind = kind;
                if flags & PRIORITY != 0 {
                    payload = &payload[5..];
                }
            }
            if kind == HEADERS || kind == CONTINUATION {
                block.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    out.push((first_kind, decoder.decode(&block).unwrap()));
                    block.clear();
                }
            } else {
                out.push((kind, Vec::new()));
            }
            rest = &rest[9 + len..];
        }
        out
    }

    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut r = Rewriter::default();
        let mut out = BytesMut::new();
        for c in input.chunks(chunk) {
            r.feed(c, &mut out).unwrap();
        }
        out.to_vec()
    }

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[test]
    fn a_socket_path_authority_becomes_localhost_and_the_rest_is_kept() {
        let mut encoder = loona_hpack::Encoder::new();
        let req: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":path", b"/SpiffeWorkloadAPI/FetchX509SVID"),
            (b":authority", b"tmp%2Frun%2Fagent.sock"),
            (b"workload.spiffe.io", b"true"),
        ];
        let block = encoder.encode(req.iter().copied());
        // The same headers again: the encoder may now use its dynamic table.
        let again = encoder.encode(req.iter().copied());
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, b"")); // SETTINGS passes through
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
        // The second block split over HEADERS (padded, with priority) and CONTINUATION.
        let (a, b) = again.split_at(again.len() / 2);
        let mut padded = vec![3u8];
        padded.extend_from_slice(&[0, 0, 0, 0, 16]);
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0, 0]);
        input.extend(frame(HEADERS, PADDED | PRIORITY, 3, &padded));
        input.extend(frame(CONTINUATION, END_HEADERS, 3, b));
        for chunk in [1, 7, 4096] {
            let out = run(&input, chunk);
            assert_eq!(&out[..PREFACE_LEN], PREFACE);
            let frames = decode_all(&out);
            assert_eq!(frames.len(), 3, "SETTINGS and two header blocks");
            for (kind, headers) in &frames[1..] {
                assert_eq!(*kind, HEADERS);
                let expected: Vec<(Vec<u8>, Vec<u8>)> = req
                    .iter()
                    .map(|(n, v)| {
                        let v: &[u8] = if *n == b":authority" { b"localhost" } else { v };
                        (n.to_vec(), v.to_vec())
                    })
                    .collect();
                assert_eq!(headers, &expected);
            }
        }
    }

    #[test]
    fn a_rewritten_long_block_is_split_into_frames_the_server_accepts() {
        let long = vec![b'x'; 40_000];
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode([
            (&b":authority"[..], &b"tmp%2Fagent.sock"[..]),
            (&b"x-long"[..], &long[..]),
        ]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &block));
        let out = run(&input, 1000);
        let mut rest = &out[PREFACE_LEN..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            assert!(len <= MAX_FRAME, "a frame of {len} bytes");
            rest = &rest[FRAME_HEADER_LEN + len..];
        }
        let frames = decode_all(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1[0].1, b"localhost");
        assert_eq!(frames[0].1[1].1, long);
    }

    #[test]
    fn a_connection_whose_first_authority_is_valid_passes_through_byte_for_byte() {
        let mut encoder = loona_hpack::Encoder::new();
        let first = encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (&b":authority"[..], &b"localhost"[..]),
        ]);
        // A later block is not looked at any more, whatever it holds.
        let later = encoder.encode([(&b":authority"[..], &b"tmp%2Fagent.sock"[..])]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, b""));
        let (a, b) = first.split_at(first.len() / 2);
        input.extend(frame(HEADERS, 0, 1, a));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        input.extend(frame(0x0, END_STREAM, 1, b"payload"));
        input.extend(frame(HEADERS, END_HEADERS, 3, &later));
        for chunk in [1, 5, 4096] {
            let mut r = Rewriter::default();
            let mut out = BytesMut::new();
            for c in input.chunks(chunk) {
                r.feed(c, &mut out).unwrap();
            }
            assert_eq!(out.to_vec(), input, "chunks of {chunk}");
            assert!(r.passing_through());
        }
    }

    #[test]
    fn a_connection_rewritten_once_keeps_being_rewritten() {
        let mut encoder = loona_hpack::Encoder::new();
        let first = encoder.encode([(&b":authority"[..], &b"tmp%2Fagent.sock"[..])]);
        let later = encoder.encode([(&b":authority"[..], &b"localhost"[..])]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &first));
        input.extend(frame(HEADERS, END_HEADERS, 3, &later));
        let out = run(&input, 3);
        let frames = decode_all(&out);
        assert_eq!(
            frames[0].1,
            vec![(b":authority".to_vec(), b"localhost".to_vec())]
        );
        assert_eq!(
            frames[1].1,
            vec![(b":authority".to_vec(), b"localhost".to_vec())]
        );
        // Re-encoded as literals: the server's table stays empty, so the bytes differ.
        assert_ne!(out, input);
    }

    #[test]
    fn a_continuation_without_headers_is_refused() {
        let mut r = Rewriter::default();
        let mut out = BytesMut::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(CONTINUATION, END_HEADERS, 1, b"\x82"));
        assert!(r.feed(&input, &mut out).is_err());
    }
}
