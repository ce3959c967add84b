//! Zero-copy sends of cached whole segments on plain-TCP connections.
//!
//! A whole segment answered to many viewers is a node's largest and most repeated write.
//! Written from memory, the kernel copies every byte into the socket once per response;
//! `sendfile(2)` from a file hands the file's pages to TCP instead. This module keeps a
//! file copy (unnamed, in the temp directory; a memfd where that cannot be) beside selected
//! buffers ([`back`]) and a registry of where those buffers live in memory. [`ZeroCopyStream`], the plain-TCP stream hyper writes
//! responses to, looks up each slice it is given: a slice inside a registered buffer goes out
//! with `sendfile` from the same offset of its file, anything else with `writev`.
//!
//! Why this is sound without `unsafe`: a [`Bytes`] never changes while it is alive, and a
//! registration lives exactly as long as its buffer (the owner unregisters in `Drop`, before
//! the memory is freed). A slice being written is borrowed from a live `Bytes`, so it either
//! lies inside a live registration whose file holds the same bytes, or it is not registered.
//! A lookup that finds nothing only costs the copy. Each thread remembers the region its
//! last lookup found and trusts it only while no buffer has been unregistered since (a count
//! bumped in `Drop` before the memory is freed), so most lookups take no lock. TLS
//! connections always copy (rustls encrypts in user space), and so do slices shorter than
//! [`MIN_LOOKUP`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use rustix::net::SendFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::sharded::ShardedCounter;

/// Buffers shorter than this are not backed: their copy costs less than the file.
pub const MIN_BACKED: usize = 64 * 1024;
/// Slices shorter than this are written without a registry lookup (headers, playlists, the
/// tail of a partly sent segment, HTTP/2's 16 KB DATA frames: a `sendfile` each would cost
/// more than their copy).
pub const MIN_LOOKUP: usize = 32 * 1024;
/// Most buffers backed at once (one open file each); past it, buffers stay plain.
pub const MAX_BACKED: usize = 4096;

/// Registered buffers by (start address, registration id): the id keeps two registrations of
/// one address apart.
type Registry = BTreeMap<(usize, u64), Region>;

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| RwLock::new(BTreeMap::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Unregistrations so far, counted before the memory is freed. A region a thread remembers is
/// still registered as long as this count has not moved since it was found.
static UNREGISTERED: AtomicU64 = AtomicU64::new(0);

/// A registered region one thread found last.
struct Remembered {
    start: usize,
    end: usize,
    file: Arc<File>,
    /// `UNREGISTERED` when it was found.
    unregistered: u64,
}

thread_local! {
    /// The region this thread's last successful lookup found. A thread sends the same few
    /// segments over and over; remembering the last one spares the registry's lock (shared
    /// by every HTTP thread) and the file's reference count on most lookups. It may keep a
    /// dropped segment's file open until the thread's next lookup.
    static LAST: RefCell<Option<Remembered>> = const { RefCell::new(None) };
}

struct Region {
    end: usize,
    file: Arc<File>,
}

/// Owns a backed buffer; unregisters it when the last [`Bytes`] of it is dropped.
struct Backed {
    bytes: Bytes,
    key: (usize, u64),
}

impl AsRef<[u8]> for Backed {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Backed {
    fn drop(&mut self) {
        UNREGISTERED.fetch_add(1, Ordering::SeqCst);
        let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        registry.remove(&self.key);
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `bytes`, with a file copy registered for zero-copy sends when it is large enough and the
/// limit of backed buffers allows; otherwise (or when the file cannot be made) `bytes` as is.
/// The same memory is not backed twice.
pub fn back(bytes: Bytes) -> Bytes {
    if bytes.len() < MIN_BACKED || is_backed(&bytes) {
        return bytes;
    }
    if LIVE.fetch_add(1, Ordering::Relaxed) >= MAX_BACKED {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        return bytes;
    }
    let file = match file_copy(&bytes) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(error = %e, len = bytes.len(), "no zero-copy file for a segment; it is sent by copy");
            return bytes;
        }
    };
    let start = bytes.as_ptr() as usize;
    let key = (start, NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let region = Region { end: start + bytes.len(), file };
    REGISTRY.write().unwrap_or_else(|e| e.into_inner()).insert(key, region);
    Bytes::from_owner(Backed { bytes, key })
}

/// Whether `buf` lies entirely inside a backed buffer.
pub fn is_backed(buf: &[u8]) -> bool {
    with_region(buf, |_, _| ()).is_some()
}

/// Buffers backed now.
pub fn backed_count() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn file_copy(bytes: &[u8]) -> std::io::Result<File> {
    let mut file = match unlinked_file() {
        Ok(f) => f,
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::info!(
                    dir = %std::env::temp_dir().display(),
                    error = %e,
                    "zero-copy segment copies live in memory files (no O_TMPFILE in the temp directory)"
                );
            });
            File::from(rustix::fs::memfd_create("skyrelay-segment", rustix::fs::MemfdFlags::CLOEXEC)?)
        }
    };
    file.write_all(bytes)?;
    Ok(file)
}

/// An unnamed file in the temp directory (`TMPDIR`): on a disk filesystem (ext4, xfs) its
/// pages are large folios, so `sendfile` looks up one folio per many pages; a memfd
/// (tmpfs without huge pages) costs a page-cache lookup per 4 KiB, about 15 % of the edge's
/// CPU on cached segments. It is gone when the last copy of the segment drops.
fn unlinked_file() -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(std::env::temp_dir(), flags, Mode::from_raw_mode(0o600))?))
}

/// Runs `f` with the file and offset where `buf` lies in a backed buffer, if it does.
///
/// The remembered region is used only while no buffer has been unregistered since it was
/// found: then it is still registered, so its memory is live, and `buf` (borrowed from a live
/// buffer) lies inside it only if it is that buffer. Otherwise the registry is searched.
fn with_region<R>(buf: &[u8], f: impl FnOnce(&File, u64) -> R) -> Option<R> {
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let unregistered = UNREGISTERED.load(Ordering::SeqCst);
    LAST.with_borrow_mut(|last| {
        if last.as_ref().is_some_and(|r| r.unregistered != unregistered) {
            // Possibly dropped: let go of its file now rather than at the next find.
            *last = None;
        }
        if !last.as_ref().is_some_and(|r| r.start <= start && end <= r.end) {
            let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
            let (&(region_start, _), region) = registry.range(..=(start, u64::MAX)).next_back()?;
            if end > region.end {
                return None;
            }
            *last = Some(Remembered {
                start: region_start,
                end: region.end,
                file: region.file.clone(),
                unregistered,
            });
        }
        let r = last.as_ref()?;
        Some(f(&r.file, (start - r.start) as u64))
    })
}

/// [`with_region`] for a slice long enough to be worth a `sendfile` (at least [`MIN_LOOKUP`]).
fn with_sendable<R>(buf: &IoSlice<'_>, f: impl FnOnce(&File, u64) -> R) -> Option<R> {
    if buf.len() < MIN_LOOKUP { None } else { with_region(buf, f) }
}

/// A plain-TCP connection whose vectored writes send backed slices with `sendfile`.
/// `sent` counts the bytes sent that way.
///
/// The socket is corked (`TCP_CORK`) from a backed slice's response head to the end of the
/// slice. `sendfile` hands TCP a segment 64 KiB at a time and releases the socket between
/// batches; with `TCP_NODELAY` on (as delivery sockets are), an acknowledgement processed
/// there pushes whatever partial packet is queued, so an uncorked segment leaves in about one
/// more packet per response (small ones, each a full trip through the stack on both ends).
/// Corked, only full packets leave until the slice ends, and the uncork sends its tail.
pub struct ZeroCopyStream {
    inner: TcpStream,
    sent: Arc<ShardedCounter>,
    corked: bool,
}

impl ZeroCopyStream {
    pub fn new(inner: TcpStream, sent: Arc<ShardedCounter>) -> Self {
        ZeroCopyStream { inner, sent, corked: false }
    }

    /// Holds partial packets back until [`uncork`](Self::uncork). Best effort: a socket that
    /// refuses stays as it is, and its packets only come out smaller.
    fn cork(&mut self) {
        if !self.corked {
            self.corked = rustix::net::sockopt::set_tcp_cork(&self.inner, true).is_ok();
        }
    }

    /// Sends what corking held back.
    fn uncork(&mut self) {
        if self.corked {
            self.corked = false;
            let _ = rustix::net::sockopt::set_tcp_cork(&self.inner, false);
        }
    }

    /// Runs the non-blocking `send` when the socket is writable, until it does not block.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        send: impl Fn(&TcpStream) -> rustix::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_io(Interest::WRITABLE, || send(&self.inner).map_err(std::io::Error::from)) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.uncork();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// Writes a prefix of `bufs`: the first slice with `sendfile` when it is backed, else
    /// the slices up to the next backed one with `writev`.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let len = bufs[first].len();
        let this = &mut *self;
        let sendfile = with_sendable(&bufs[first], |file, offset| {
            this.cork();
            this.poll_send(cx, |s| {
                let mut at = offset;
                rustix::fs::sendfile(s, file, Some(&mut at), len)
            })
        });
        if let Some(sent) = sendfile {
            let sent = ready!(sent)?;
            self.sent.inc_by(sent as u64);
            // A partly sent slice stays corked: the caller writes the rest next.
            if sent == len {
                self.uncork();
            }
            return Poll::Ready(Ok(sent));
        }
        let rest = &bufs[first + 1..];
        match rest.iter().position(|b| with_sendable(b, |_, _| ()).is_some()) {
            // A response head before a backed body: corked, it leaves in the same packet as
            // the body's start rather than as a small packet of its own.
            Some(i) => {
                self.cork();
                let prefix = &bufs[first..first + 1 + i];
                self.poll_send(cx, |s| {
                    rustix::net::sendmsg(s, prefix, &mut Default::default(), SendFlags::NOSIGNAL)
                })
            }
            None => {
                self.uncork();
                Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[first..])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.uncork();
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.uncork();
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect::<Vec<u8>>().into()
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[test]
    fn small_buffers_stay_plain_and_large_ones_are_registered_until_dropped() {
        let small = back(pattern(MIN_BACKED - 1, 1));
        assert!(!is_backed(&small));
        let large = back(pattern(MIN_BACKED * 2, 2));
        assert!(is_backed(&large));
        assert!(is_backed(&large[100..MIN_BACKED]), "a slice inside is found");
        let again = back(large.clone());
        assert_eq!(again.as_ptr(), large.as_ptr(), "the same memory is not backed twice");
        let ptr = large.as_ptr() as usize;
        drop((large, again));
        let registry = REGISTRY.read().unwrap();
        assert!(registry.keys().all(|(start, _)| *start != ptr), "dropping the last reference unregisters");
    }

    #[test]
    fn a_remembered_region_is_not_trusted_once_a_buffer_is_unregistered() {
        // The thread remembers the region of the last lookup; once that buffer is dropped,
        // memory at the same address (allocators reuse a freed block of the same size) must
        // not be taken for it. Small enough to come from the heap, not from a mapping of its
        // own, so that the freed block is handed out again.
        let len = MIN_BACKED + 1_000;
        let mut reused = 0;
        for round in 0..20u8 {
            let backed = back(pattern(len, round));
            assert!(is_backed(&backed[10..]), "found and remembered");
            let ptr = backed.as_ptr() as usize;
            drop(backed);
            let plain = Bytes::from(vec![round; len]);
            reused += usize::from(plain.as_ptr() as usize == ptr);
            assert!(!is_backed(&plain), "round {round}: plain memory taken for a dropped region");
            // And a region remembered before another buffer's drop is looked up again, still found.
            let kept = back(pattern(len, round ^ 0x55));
            assert!(is_backed(&kept));
            drop(back(pattern(len, round ^ 0xAA)));
            assert!(is_backed(&kept[1..]), "round {round}: still registered after another buffer's drop");
        }
        assert!(reused > 0, "the allocator never reused a dropped buffer's address: the test proves nothing");
    }

    #[tokio::test]
    async fn backed_slices_arrive_intact_through_sendfile_and_the_rest_through_writev() {
        let (server, mut client) = pair().await;
        let sent =
            Arc::new(ShardedCounter::new(prometheus::IntCounter::new("zc_test_bytes", "test").unwrap()));
        let mut stream = ZeroCopyStream::new(server, sent.clone());
        let segment = back(pattern(300_000, 7));
        assert!(is_backed(&segment));
        let header = Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 299000\r\n\r\n");
        // hyper hands over the head and the body as one vectored write, and after a partial
        // write, the rest of the body from an offset: start the body at 1,000.
        let body = segment.slice(1_000..);
        let expected: Vec<u8> = [header.as_ref(), body.as_ref()].concat();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "received bytes differ from the buffers written");
        });
        let mut bufs = [header.clone(), body.clone()];
        let mut written = 0;
        while written < header.len() + body.len() {
            let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
            let n = stream.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            written += n;
            let mut left = n;
            for b in &mut bufs {
                let k = left.min(b.len());
                bytes::Buf::advance(b, k);
                left -= k;
            }
        }
        stream.flush().await.unwrap();
        reader.await.unwrap();
        assert_eq!(sent.get(), body.len() as u64, "the whole body went out with sendfile, the head did not");
    }

    #[tokio::test]
    async fn a_backed_slice_is_corked_from_its_head_to_its_end() {
        let (server, mut client) = pair().await;
        // A small send buffer: sendfile returns partway, several times.
        rustix::net::sockopt::set_socket_send_buffer_size(&server, 16 * 1024).unwrap();
        let sent =
            Arc::new(ShardedCounter::new(prometheus::IntCounter::new("zc_test_cork", "test").unwrap()));
        let mut stream = ZeroCopyStream::new(server, sent.clone());
        let corked = |s: &ZeroCopyStream| rustix::net::sockopt::tcp_cork(&s.inner).unwrap();
        let segment = back(pattern(300_000, 5));
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 300000\r\n\r\n");
        let expected: Vec<u8> = [head.as_ref(), segment.as_ref(), b"tail"].concat();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == expected, "received bytes differ from the buffers written");
        });

        let n = stream.write_vectored(&[IoSlice::new(&head), IoSlice::new(&segment)]).await.unwrap();
        assert_eq!(n, head.len(), "the head goes alone, ahead of the sendfile");
        assert!(corked(&stream), "corked from the head on");
        let (mut at, mut partial_writes) = (0, 0);
        while at < segment.len() {
            let n = stream.write_vectored(&[IoSlice::new(&segment[at..])]).await.unwrap();
            assert!(n > 0);
            at += n;
            if at < segment.len() {
                partial_writes += 1;
                assert!(corked(&stream), "still corked with {} bytes of the slice to go", segment.len() - at);
            }
        }
        assert!(partial_writes > 0, "the small send buffer should have split the sendfile");
        assert!(!corked(&stream), "uncorked once the slice is out: its last packet leaves now");
        stream.write_all(b"tail").await.unwrap();
        assert!(!corked(&stream));
        reader.await.unwrap();
        assert_eq!(sent.get(), segment.len() as u64);
    }

    #[tokio::test]
    async fn plain_buffers_are_written_by_copy() {
        let (server, mut client) = pair().await;
        let sent =
            Arc::new(ShardedCounter::new(prometheus::IntCounter::new("zc_test_plain", "test").unwrap()));
        let mut stream = ZeroCopyStream::new(server, sent.clone());
        let plain = pattern(200_000, 9);
        let expected = plain.clone();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            client.read_exact(&mut got).await.unwrap();
            assert!(got == expected);
        });
        stream.write_all(&plain).await.unwrap();
        reader.await.unwrap();
        assert_eq!(sent.get(), 0);
    }
}
