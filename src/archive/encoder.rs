//! The xz encoder an archive is written through: liblzma's multi-threaded one, driven
//! here rather than by the crate's writer so that a stop request is seen while the
//! threads compress. The crate's writer waits inside liblzma until a worker is free,
//! which for a 64 MiB block on a loaded machine is minutes: Ctrl-C waited that long.
//! Here liblzma returns every [`POLL_MS`] (its `timeout` option) and the stop check
//! runs between calls. Dropped unfinished, it writes nothing more (no end of stream).

use std::io::{self, Write};

use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};

/// How often liblzma hands control back while its threads are busy.
pub const POLL_MS: u32 = 200;

/// The output buffered before it goes to the file.
const OUT_BUF: usize = 1 << 20;

pub struct Encoder<'a, W: Write> {
    stream: Stream,
    out: Vec<u8>,
    inner: W,
    check: &'a dyn Fn() -> io::Result<()>,
}

impl<'a, W: Write> Encoder<'a, W> {
    /// An encoder from `builder` (its timeout set to [`POLL_MS`]) writing to `inner`;
    /// `check` fails once the work should stop.
    pub fn new(
        builder: &mut MtStreamBuilder,
        inner: W,
        check: &'a dyn Fn() -> io::Result<()>,
    ) -> io::Result<Self> {
        let stream = builder
            .timeout_ms(POLL_MS)
            .encoder()
            .map_err(io::Error::other)?;
        Ok(Self {
            stream,
            out: Vec::with_capacity(OUT_BUF),
            inner,
            check,
        })
    }

    fn dump(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// End the stream (the threads' last blocks), and hand back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        loop {
            self.dump()?;
            let status = self
                .stream
                .process_vec(&[], &mut self.out, Action::Finish)
                .map_err(io::Error::other)?;
            if status == Status::StreamEnd {
                self.dump()?;
                return Ok(self.inner);
            }
            (self.check)()?;
        }
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            self.dump()?;
            let before = self.stream.total_in();
            self.stream
                .process_vec(data, &mut self.out, Action::Run)
                .map_err(io::Error::other)?;
            let taken = usize::try_from(self.stream.total_in() - before).unwrap_or(usize::MAX);
            if taken > 0 || data.is_empty() {
                return Ok(taken);
            }
            // Nothing taken: every thread is busy and liblzma timed out waiting.
            (self.check)()?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.dump()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn builder() -> MtStreamBuilder {
        let mut b = MtStreamBuilder::new();
        b.preset(6).threads(2).block_size(1 << 20);
        b
    }

    #[test]
    fn what_it_writes_reads_back() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let ok = || Ok(());
        let mut e = Encoder::new(&mut builder(), Vec::new(), &ok).unwrap();
        for chunk in data.chunks(10_000) {
            e.write_all(chunk).unwrap();
        }
        let packed = e.finish().unwrap();
        let mut back = Vec::new();
        io::Read::read_to_end(
            &mut crate::archive::unpack::xz_reader(&packed[..]).unwrap(),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_stop_is_seen_while_the_threads_compress() {
        // Incompressible input keeps both threads busy (a 4 MiB block of it takes
        // xz well over the poll interval), so liblzma soon stops taking more; the
        // check runs while it waits, and its error ends the write.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..24 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let asked = Cell::new(0u32);
        let stop = || {
            asked.set(asked.get() + 1);
            // not `Interrupted`, which `write_all` retries
            Err(io::Error::other("stop"))
        };
        let mut b = builder();
        b.block_size(4 << 20);
        let mut e = Encoder::new(&mut b, io::sink(), &stop).unwrap();
        let r = e.write_all(&data);
        assert!(r.is_err_and(|e| e.to_string() == "stop"));
        assert_eq!(asked.get(), 1, "asked once, when liblzma waited");
    }
}
