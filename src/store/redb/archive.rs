//! How a finished run is kept compactly: its record compressed, and its log lines gathered
//! into one compressed entry (`ARCHIVED_LOGS`). A finished run is read often (listings, the
//! API) and written rarely, so decompressing on read costs less than the disk it saves.
//! lz4 (`lz4_flex`, pure Rust): about a gigabyte a second each way, so a read stays cheap.

use anyhow::{anyhow, Result};

/// Compresses a document.
pub fn pack(doc: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(doc)
}

/// Undoes [`pack`].
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>> {
    lz4_flex::decompress_size_prepended(packed).map_err(|e| anyhow!("a compressed record is damaged: {e}"))
}

/// Log lines (sequence number, line), in order, as one compressed value.
pub fn pack_lines(lines: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(lines.iter().map(|(_, l)| 12 + l.len()).sum());
    for (seq, line) in lines {
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.extend_from_slice(&(line.len() as u32).to_le_bytes());
        raw.extend_from_slice(line);
    }
    pack(&raw)
}

/// Undoes [`pack_lines`].
pub fn unpack_lines(packed: &[u8]) -> Result<Vec<(u64, Vec<u8>)>> {
    let raw = unpack(packed)?;
    let mut lines = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let header = raw
            .get(at..at + 12)
            .ok_or_else(|| anyhow!("archived log lines are damaged"))?;
        let seq = u64::from_le_bytes(header[..8].try_into()?);
        let len = u32::from_le_bytes(header[8..].try_into()?) as usize;
        let line = raw
            .get(at + 12..at + 12 + len)
            .ok_or_else(|| anyhow!("archived log lines are damaged"))?;
        lines.push((seq, line.to_vec()));
        at += 12 + len;
    }
    Ok(lines)
}
