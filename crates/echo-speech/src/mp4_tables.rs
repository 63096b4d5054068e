//! What reading an MP4 (M4A, MOV) costs symphonia, counted from its sample tables before it
//! is read.
//!
//! symphonia finds each packet's time by walking its track's time-to-sample table (`stts`)
//! from the first entry, for every track, at every packet: reading a file costs about its
//! packets (all tracks') times its time tables' entries (all tracks'). Tables of a few entries,
//! as encoders write them, cost nothing; a table written with one entry per packet makes the
//! read quadratic, hours of CPU for a file of minutes, in a blocking thread no deadline can
//! stop mid-packet. So the tables are counted first, from box headers and the time table's
//! counts (nothing is allocated from what the file states), along the very boxes symphonia
//! reads (`moov/trak/mdia/minf/stbl`, then `stts` and `stsz`). Fragmented files (`moof`)
//! are not counted: their tables are read per fragment, and the scan's deadline bounds them. A general MP4 parser would read the
//! whole file and give up on boxes symphonia reads past, letting such a file through
//! uncounted.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Most table steps (packets × time-table entries) a file may cost to read: a few seconds of
/// one core. An audio track as encoders write it (one or two entries) stays far below it for
/// any length accepted; a video track whose frames all differ in duration (one entry per
/// frame) reaches it at about 40 minutes.
pub const MAX_TABLE_STEPS: u128 = 4_000_000_000;

/// Most boxes the count walks: a file of tiny boxes would otherwise cost the walk itself
/// minutes. A fragmented recording of three hours has some ten thousand.
pub const MAX_BOXES: u64 = 1_000_000;

/// The sample tables of a file's tracks, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSize {
    /// Packets (samples, in MP4's words) of all tracks: per track, the more of what its size
    /// table (`stsz`) and its time table (`stts`) count (symphonia reads as many as the time
    /// table lists when every sample has the same size).
    pub packets: u64,
    /// Entries of all tracks' time-to-sample tables (`stts`) that the boxes can hold.
    pub time_entries: u64,
    /// Boxes walked; past [`MAX_BOXES`] the walk stops and the file costs too much.
    pub boxes: u64,
}

impl TableSize {
    /// Table steps symphonia takes to read every packet (`u128::MAX` for a file of more
    /// boxes than are walked).
    pub fn steps(&self) -> u128 {
        if self.boxes > MAX_BOXES {
            return u128::MAX;
        }
        u128::from(self.packets) * u128::from(self.time_entries)
    }
}

/// Counts the sample tables of the MP4 file at `path`. A file whose boxes end early or state
/// impossible sizes is counted as far as its boxes go (symphonia refuses it on its own).
pub fn measure(path: &Path) -> io::Result<TableSize> {
    let mut file = BufReader::new(File::open(path)?);
    let end = file.seek(SeekFrom::End(0))?;
    let mut size = TableSize::default();
    walk(
        &mut file,
        0,
        end,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl"],
        &mut size,
    )?;
    Ok(size)
}

/// One track's sample table (`stbl`), as far as the cost of reading it goes.
#[derive(Default)]
struct SampleTable {
    /// Samples its size table counts.
    sized: u64,
    /// Samples its time table's entries add up to.
    timed: u64,
    /// Entries of its time table.
    entries: u64,
}

/// Visits the boxes between `start` and `end`, descending into those of `path`'s next level
/// and counting the tables found below the last one.
fn walk<R: Read + Seek>(
    r: &mut R,
    start: u64,
    end: u64,
    path: &[&[u8; 4]],
    size: &mut TableSize,
) -> io::Result<()> {
    let mut at = start;
    let mut table = SampleTable::default();
    while let Some(header) = read_header(r, at, end)? {
        size.boxes += 1;
        if size.boxes > MAX_BOXES {
            return Ok(());
        }
        match path.split_first() {
            Some((next, deeper)) if header.kind == **next => {
                walk(r, header.body, header.end, deeper, size)?
            }
            // A table box too short for its own counts holds nothing symphonia can read.
            None if header.end < header.body + 12 => {}
            None if &header.kind == b"stts" => {
                // Version and flags, the entry count, then (sample count, duration) pairs.
                let stated = read_u32_at(r, header.body + 4)?;
                let room = header.end.saturating_sub(header.body + 8) / 8;
                let entries = u64::from(stated).min(room);
                table.entries += entries;
                table.timed += sum_of_counts(r, header.body + 8, entries)?;
            }
            None if &header.kind == b"stsz" => {
                // Version and flags, a size for every sample (0: each has its own, 4 bytes
                // each in the box), then the sample count.
                let fixed = read_u32_at(r, header.body + 4)?;
                let stated = u64::from(read_u32_at(r, header.body + 8)?);
                let room = header.end.saturating_sub(header.body + 12) / 4;
                table.sized += if fixed == 0 { stated.min(room) } else { stated };
            }
            _ => {}
        }
        at = header.end;
    }
    size.packets += table.sized.max(table.timed);
    size.time_entries += table.entries;
    Ok(())
}

/// The sample counts of the `entries` (sample count, duration) pairs at `at`, added up.
fn sum_of_counts<R: Read + Seek>(r: &mut R, at: u64, entries: u64) -> io::Result<u64> {
    r.seek(SeekFrom::Start(at))?;
    let mut pair = [0u8; 8];
    let mut total: u64 = 0;
    for _ in 0..entries {
        r.read_exact(&mut pair)?;
        let count = u32::from_be_bytes([pair[0], pair[1], pair[2], pair[3]]);
        total = total.saturating_add(u64::from(count));
    }
    Ok(total)
}

/// A box's type, where its body begins and where it ends.
struct BoxHeader {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// The header of the box at `at`, if a whole one lies before `end`. A size of 0 runs to `end`,
/// a size of 1 is followed by a 64-bit size (as symphonia reads them); a box stating less
/// than its own header ends the walk.
fn read_header<R: Read + Seek>(r: &mut R, at: u64, end: u64) -> io::Result<Option<BoxHeader>> {
    if end.saturating_sub(at) < 8 {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(at))?;
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    let kind = [head[4], head[5], head[6], head[7]];
    let (size, header_len) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
        0 => (end - at, 8),
        1 => {
            if end - at < 16 {
                return Ok(None);
            }
            let mut large = [0u8; 8];
            r.read_exact(&mut large)?;
            (u64::from_be_bytes(large), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header_len {
        return Ok(None);
    }
    Ok(Some(BoxHeader {
        kind,
        body: at + header_len,
        end: at.saturating_add(size).min(end),
    }))
}

/// The big-endian `u32` at `at`, or 0 past the end of the file.
fn read_u32_at<R: Read + Seek>(r: &mut R, at: u64) -> io::Result<u32> {
    r.seek(SeekFrom::Start(at))?;
    let mut bytes = [0u8; 4];
    match r.read_exact(&mut bytes) {
        Ok(()) => Ok(u32::from_be_bytes(bytes)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}
