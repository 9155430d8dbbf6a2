//! The compressions apt keeps its lists in, read with a bound and hashed
//! on the way, so a list is verified before a byte of it is parsed.

use std::io::{self, Read, Write};
use std::path::Path;

use openwua_model::update::Sha256Digest;
use sha2::{Digest, Sha256};

/// The most a list may hold once decompressed: far above Debian's largest
/// index (about 50 MB), far below what would exhaust the machine.
pub const MAX_INDEX_BYTES: u64 = 1 << 30;

/// A compression, named by the extension apt gives the list file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No extension.
    Plain,
    /// `.gz`.
    Gzip,
    /// `.xz`.
    Xz,
    /// `.lz4` (frame format; apt's default for lists on Debian).
    Lz4,
    /// `.zst`.
    Zstd,
}

impl Compression {
    /// The extensions apt may give a list, in the order apt prefers them
    /// when more than one is on disk.
    pub const ALL: [Compression; 5] = [
        Compression::Plain,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Gzip,
        Compression::Xz,
    ];

    /// The file name extension, with its dot (empty for plain).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Plain => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Lz4 => ".lz4",
            Compression::Zstd => ".zst",
        }
    }
}

/// A list's content with the digest of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decompressed {
    /// The decompressed bytes.
    pub bytes: Vec<u8>,
    /// Their SHA-256 digest.
    pub sha256: Sha256Digest,
}

/// Collects bytes up to a limit, hashing them as they come.
struct BoundedSink {
    bytes: Vec<u8>,
    hasher: Sha256,
    limit: u64,
}

impl Write for BoundedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() as u64 + buf.len() as u64 > self.limit {
            return Err(io::Error::other(format!(
                "decompresses to more than {} bytes (a decompression bomb?)",
                self.limit
            )));
        }
        self.hasher.update(buf);
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decompresses `compressed` (as `compression`), refusing more than
/// `limit` bytes of output, and returns it with its digest.
pub fn decompress(
    compressed: &[u8],
    compression: Compression,
    limit: u64,
) -> io::Result<Decompressed> {
    let mut sink = BoundedSink {
        // Lists compress about 2.5 to 6 times; start near the likely size.
        bytes: Vec::with_capacity(
            (compressed.len().saturating_mul(3)).min(usize::try_from(limit).unwrap_or(usize::MAX)),
        ),
        hasher: Sha256::new(),
        limit,
    };
    match compression {
        Compression::Plain => sink.write_all(compressed)?,
        Compression::Gzip => copy(flate2::read::MultiGzDecoder::new(compressed), &mut sink)?,
        Compression::Lz4 => copy(lz4_flex::frame::FrameDecoder::new(compressed), &mut sink)?,
        Compression::Zstd => copy(zstd::Decoder::new(compressed)?, &mut sink)?,
        Compression::Xz => {
            let mut input = io::BufReader::new(compressed);
            lzma_rs::xz_decompress(&mut input, &mut sink).map_err(|error| match error {
                lzma_rs::error::Error::IoError(error) => error,
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            })?;
        }
    }
    let sha256 = Sha256Digest(sink.hasher.finalize().into());
    Ok(Decompressed {
        bytes: sink.bytes,
        sha256,
    })
}

fn copy(mut reader: impl Read, sink: &mut BoundedSink) -> io::Result<()> {
    io::copy(&mut reader, sink).map(|_| ())
}

/// Reads the file at `path`, decompressing it as its extension says.
/// The compressed file is bounded by [`MAX_INDEX_BYTES`] too.
pub fn read_list(path: &Path, compression: Compression) -> io::Result<Decompressed> {
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if metadata.len() > MAX_INDEX_BYTES {
        return Err(io::Error::other(format!(
            "larger than {MAX_INDEX_BYTES} bytes"
        )));
    }
    let mut compressed = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_INDEX_BYTES + 1)
        .read_to_end(&mut compressed)?;
    decompress(&compressed, compression, MAX_INDEX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"Package: a\nVersion: 1\n\nPackage: b\nVersion: 2\n";

    fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
        match compression {
            Compression::Plain => data.to_vec(),
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(data).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                encoder.write_all(data).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
            Compression::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut io::BufReader::new(data), &mut out).unwrap();
                out
            }
        }
    }

    fn digest(data: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(data).into())
    }

    #[test]
    fn every_compression_round_trips_with_the_digest_of_the_content() {
        for compression in Compression::ALL {
            let packed = compress(compression, TEXT);
            let found = decompress(&packed, compression, MAX_INDEX_BYTES).unwrap();
            assert_eq!(found.bytes, TEXT, "{compression:?}");
            assert_eq!(found.sha256, digest(TEXT), "{compression:?}");
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        for compression in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let data: Vec<u8> = (0..20_000u32).flat_map(|n| n.to_le_bytes()).collect();
            let packed = compress(compression, &data);
            let cut = &packed[..packed.len() / 2];
            assert!(
                decompress(cut, compression, MAX_INDEX_BYTES).is_err(),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for compression in [
            Compression::Gzip,
            Compression::Lz4,
            Compression::Xz,
            Compression::Zstd,
        ] {
            assert!(
                decompress(b"\x00\x01garbage, not compressed", compression, 1 << 20).is_err(),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 4 << 20];
        for compression in Compression::ALL {
            let packed = compress(compression, &zeros);
            let error = decompress(&packed, compression, 1 << 20).unwrap_err();
            assert!(
                error.to_string().contains("more than"),
                "{compression:?}: {error}"
            );
        }
    }
}
