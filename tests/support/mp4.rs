//! MP4 files made box by box, for tests whose container must state its tables in a way no
//! muxer writes (a time-to-sample table with an entry per packet).

/// 8 kHz mono 16-bit little-endian PCM (`sowt`), a packet per frame as QuickTime stores PCM.
const RATE: u32 = 8_000;

/// How the file's time-to-sample table (`stts`) states the packets' durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTable {
    /// One entry for every packet, as encoders write it: all last one frame.
    Compact,
    /// An entry per packet, each saying one packet lasts one frame: the same times, a table
    /// as long as the file.
    EntryPerPacket,
    /// The same, and a size table that states one sample (all of one size): symphonia reads
    /// as many packets as the time table lists all the same.
    EntryPerPacketOneSized,
}

/// An MP4 of `seconds` seconds of 8 kHz mono PCM (a quiet tone) whose time table is `table`.
pub fn pcm_mp4(seconds: u32, table: TimeTable) -> Vec<u8> {
    let frames = RATE * seconds;
    let samples: Vec<u8> = (0..frames)
        .flat_map(|i| {
            let tone = if (i / 10) % 2 == 0 { 3_000i16 } else { -3_000 };
            tone.to_le_bytes()
        })
        .collect();
    let ftyp = bx(b"ftyp", &[&b"M4A "[..], &u32b(0), b"M4A isom"].concat());
    let stts = match table {
        TimeTable::Compact => full(b"stts", &[u32b(1), u32b(frames), u32b(1)].concat()),
        TimeTable::EntryPerPacket | TimeTable::EntryPerPacketOneSized => {
            let mut body = u32b(frames);
            for _ in 0..frames {
                body.extend(u32b(1));
                body.extend(u32b(1));
            }
            full(b"stts", &body)
        }
    };
    let sample_entry = bx(
        b"sowt",
        &[
            vec![0; 6],
            u16b(1),    // data reference index
            u16b(0),    // version 0
            vec![0; 6], // revision, vendor
            u16b(1),    // channels
            u16b(16),   // bits per sample
            vec![0; 4], // compression id, packet size
            u32b(RATE << 16),
        ]
        .concat(),
    );
    let stsd = full(b"stsd", &[u32b(1), sample_entry].concat());
    let stsc = full(b"stsc", &[u32b(1), u32b(1), u32b(frames), u32b(1)].concat());
    let sized = match table {
        TimeTable::EntryPerPacketOneSized => 1,
        _ => frames,
    };
    let stsz = full(b"stsz", &[u32b(2), u32b(sized)].concat());
    let head = |offset: u32| {
        let stco = full(b"stco", &[u32b(1), u32b(offset)].concat());
        let stbl = bx(b"stbl", &[&stsd[..], &stts, &stsc, &stsz, &stco].concat());
        let dref = full(b"dref", &[u32b(1), bx(b"url ", &[0, 0, 0, 1])].concat());
        let minf = bx(
            b"minf",
            &[full(b"smhd", &[0u8; 4]), bx(b"dinf", &dref), stbl].concat(),
        );
        let mdhd = full(
            b"mdhd",
            &[
                u32b(0),
                u32b(0),
                u32b(RATE),
                u32b(frames),
                u16b(0x55c4),
                u16b(0),
            ]
            .concat(),
        );
        let hdlr = full(
            b"hdlr",
            &[u32b(0), b"soun".to_vec(), vec![0; 12], b"echo\0".to_vec()].concat(),
        );
        let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
        let tkhd = full(
            b"tkhd",
            &[
                u32b(0),
                u32b(0),
                u32b(1), // track id
                u32b(0),
                u32b(frames),
                vec![0; 8],
                u16b(0),
                u16b(0),
                u16b(0x0100), // volume
                u16b(0),
                matrix(),
                u32b(0),
                u32b(0),
            ]
            .concat(),
        );
        let trak = bx(b"trak", &[tkhd, mdia].concat());
        let mvhd = full(
            b"mvhd",
            &[
                u32b(0),
                u32b(0),
                u32b(RATE),
                u32b(frames),
                u32b(0x0001_0000), // rate 1.0
                u16b(0x0100),      // volume 1.0
                vec![0; 10],
                matrix(),
                vec![0; 24],
                u32b(2), // next track id
            ]
            .concat(),
        );
        bx(b"moov", &[mvhd, trak].concat())
    };
    // The chunk offset points into `mdat`, which follows `moov`: its length is known first.
    let moov_len = head(0).len();
    let data_at = ftyp.len() + moov_len + 8;
    let moov = head(u32::try_from(data_at).expect("a test file under 4 GB"));
    [ftyp, moov, bx(b"mdat", &samples)].concat()
}

/// A box: its size, its type, its body.
fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let size = u32::try_from(body.len() + 8).expect("a test box under 4 GB");
    [&size.to_be_bytes()[..], kind, body].concat()
}

/// A full box: version 0 and no flags, then its body.
fn full(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    bx(kind, &[&[0u8; 4][..], body].concat())
}

fn u32b(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn u16b(n: u16) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
fn matrix() -> Vec<u8> {
    [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect()
}
