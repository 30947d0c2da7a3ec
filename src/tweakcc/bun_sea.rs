//! The module table of a Bun single-file executable, read from the end of the file, to
//! find the embedded `cli.js` (spec: upstream-runtime §6.5).
//!
//! The input is a file kanibako did not write: every offset and length is checked
//! against the buffer before use, with checked arithmetic, so a truncated or hostile
//! file gives an error and never a panic or a read outside the buffer.

/// The marker that ends 8 bytes before the end of the file.
pub const MARKER: &[u8; 16] = b"\n---- Bun! ----\n";
/// `byteCount` u64, then five u32 fields (modules offset/length, entry point, exec
/// argv offset/length) and u32 flags.
pub const OFFSETS_LEN: usize = 32;
/// One module record in Bun >= 1.3.7: six (u32 offset, u32 length) string pointers and
/// 4 bytes of flags. Another Bun may use another layout: a size that does not divide
/// means "not patchable", not a crash.
pub const MODULE_RECORD_LEN: usize = 52;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeaError {
    #[error("file too small to be a Bun single-file executable")]
    TooSmall,
    #[error("Bun single-file executable marker not found")]
    NoMarker,
    #[error("invalid data start (the payload claims {0} bytes)")]
    BadDataStart(u64),
    #[error("module table at {offset}+{length} lies outside the payload")]
    TableOutOfBounds { offset: u64, length: u64 },
    #[error(
        "module table size {0} is not a multiple of {MODULE_RECORD_LEN} (another Bun version?)"
    )]
    TableSize(u64),
    #[error("module {index}'s {what} lies outside the payload")]
    StringOutOfBounds { index: usize, what: &'static str },
    #[error("no module ending with 'cli.js' (modules: {0:?})")]
    NoCliJs(Vec<String>),
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `data[offset..offset+len]` if it is inside `data`.
fn slice(data: &[u8], offset: u32, len: u32) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end)
}

/// An embedded module: its name and contents.
#[derive(Debug, PartialEq, Eq)]
pub struct Module<'a> {
    pub name: String,
    pub contents: &'a [u8],
}

/// Every module in the executable's table.
pub fn modules(file: &[u8]) -> Result<Vec<Module<'_>>, SeaError> {
    let tail = MARKER.len() + 8;
    if file.len() < tail + OFFSETS_LEN {
        return Err(SeaError::TooSmall);
    }
    let marker_at = file.len() - tail;
    if &file[marker_at..marker_at + MARKER.len()] != MARKER {
        return Err(SeaError::NoMarker);
    }
    let offsets_at = marker_at - OFFSETS_LEN;
    let byte_count = u64_at(file, offsets_at).ok_or(SeaError::TooSmall)?;
    let table_offset = u32_at(file, offsets_at + 8).ok_or(SeaError::TooSmall)?;
    let table_len = u32_at(file, offsets_at + 12).ok_or(SeaError::TooSmall)?;
    let data_start = usize::try_from(byte_count)
        .ok()
        .and_then(|n| offsets_at.checked_sub(n))
        .ok_or(SeaError::BadDataStart(byte_count))?;
    let data = &file[data_start..offsets_at];
    let table = slice(data, table_offset, table_len).ok_or(SeaError::TableOutOfBounds {
        offset: u64::from(table_offset),
        length: u64::from(table_len),
    })?;
    if table.len() % MODULE_RECORD_LEN != 0 {
        return Err(SeaError::TableSize(table.len() as u64));
    }
    table
        .chunks_exact(MODULE_RECORD_LEN)
        .enumerate()
        .map(|(index, rec)| {
            let field = |i: usize| {
                (
                    u32_at(rec, i * 8).unwrap_or(0),
                    u32_at(rec, i * 8 + 4).unwrap_or(0),
                )
            };
            let (name_off, name_len) = field(0);
            let (body_off, body_len) = field(1);
            let name = slice(data, name_off, name_len).ok_or(SeaError::StringOutOfBounds {
                index,
                what: "name",
            })?;
            let contents = slice(data, body_off, body_len).ok_or(SeaError::StringOutOfBounds {
                index,
                what: "contents",
            })?;
            Ok(Module {
                name: String::from_utf8_lossy(name).into_owned(),
                contents,
            })
        })
        .collect()
}

/// The bytes of the first module whose name ends with `cli.js`.
pub fn cli_js(file: &[u8]) -> Result<&[u8], SeaError> {
    let mods = modules(file)?;
    if let Some(m) = mods.iter().find(|m| m.name.ends_with("cli.js")) {
        return Ok(m.contents);
    }
    Err(SeaError::NoCliJs(
        mods.into_iter().map(|m| m.name).collect(),
    ))
}

/// Build an executable image with these modules after `prefix` (fixtures for tests,
/// and for the end-to-end test's fake agent).
pub fn build(prefix: &[u8], mods: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut pointers = Vec::new();
    for (name, body) in mods {
        let n = (data.len() as u32, name.len() as u32);
        data.extend_from_slice(name.as_bytes());
        let b = (data.len() as u32, body.len() as u32);
        data.extend_from_slice(body);
        pointers.push((n, b));
    }
    let table_offset = data.len() as u32;
    for (n, b) in &pointers {
        for (off, len) in [*n, *b, (0, 0), (0, 0), (0, 0), (0, 0)] {
            data.extend_from_slice(&off.to_le_bytes());
            data.extend_from_slice(&len.to_le_bytes());
        }
        data.extend_from_slice(&0u32.to_le_bytes());
    }
    let table_len = (pointers.len() * MODULE_RECORD_LEN) as u32;
    let mut out = prefix.to_vec();
    out.extend_from_slice(&data);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    for v in [table_offset, table_len, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(MARKER);
    out.extend_from_slice(&(out.len() as u64 + 8).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build(
            b"\x7fELF native code",
            &[
                ("/$bunfs/root/chunk.js", b"chunk"),
                ("/$bunfs/root/cli.js", b"console.log('cli')"),
            ],
        )
    }

    #[test]
    fn finds_cli_js() {
        assert_eq!(cli_js(&sample()).unwrap(), b"console.log('cli')");
        let names: Vec<String> = modules(&sample())
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["/$bunfs/root/chunk.js", "/$bunfs/root/cli.js"]);
    }

    #[test]
    fn damaged_files_are_errors() {
        let good = sample();
        assert_eq!(cli_js(b"short"), Err(SeaError::TooSmall));
        assert_eq!(cli_js(&good[..good.len() - 1]), Err(SeaError::NoMarker));
        let no_cli = build(b"", &[("/x/other.js", b"x")]);
        assert!(matches!(cli_js(&no_cli), Err(SeaError::NoCliJs(n)) if n == ["/x/other.js"]));
        // a byteCount larger than the file
        let mut bad = good.clone();
        let at = bad.len() - 24 - OFFSETS_LEN;
        bad[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(cli_js(&bad), Err(SeaError::BadDataStart(_))));
        // a table length that is not whole records
        let mut bad = good.clone();
        let len_at = at + 12;
        let len = u32_at(&bad, len_at).unwrap();
        bad[len_at..len_at + 4].copy_from_slice(&(len - 1).to_le_bytes());
        assert!(matches!(cli_js(&bad), Err(SeaError::TableSize(_))));
        // a module pointing past the payload
        let mut bad = good.clone();
        let byte_count = u64_at(&good, at).unwrap() as usize;
        let table_at = at - byte_count + u32_at(&good, at + 8).unwrap() as usize;
        // the first record's contents length (field 1, second u32)
        bad[table_at + 12..table_at + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            cli_js(&bad),
            Err(SeaError::StringOutOfBounds {
                index: 0,
                what: "contents"
            })
        ));
    }

    /// A deterministic fuzz run: truncations, bit flips and overwritten fields of valid
    /// files must give `Ok` or an error, never a panic.
    #[test]
    fn fuzz_never_panics() {
        let mut rng = crate::fuzzing::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
        let iterations = crate::fuzzing::iterations(100_000);
        let base = sample();
        for _ in 0..iterations {
            let mut f = base.clone();
            match next() % 4 {
                0 => f.truncate((next() as usize) % (f.len() + 1)),
                1 => {
                    for _ in 0..1 + next() % 8 {
                        let i = (next() as usize) % f.len();
                        f[i] ^= 1 << (next() % 8);
                    }
                }
                2 => {
                    // overwrite a u32 in the trailer or the table with anything
                    let tail = 24 + OFFSETS_LEN + 2 * MODULE_RECORD_LEN;
                    let i = f.len() - 1 - (next() as usize) % tail.min(f.len() - 4);
                    let i = i.min(f.len() - 4);
                    f[i..i + 4].copy_from_slice(&(next() as u32).to_le_bytes());
                }
                _ => {
                    let n = (next() as usize) % 256;
                    f = (0..n).map(|_| next() as u8).collect();
                    if next() % 2 == 0 {
                        f.extend_from_slice(MARKER);
                        f.extend_from_slice(&[0; 8]);
                    }
                }
            }
            let _ = cli_js(&f);
        }
    }
}
