//! Inline media of a textual type read as text: redaction masks it, detectors scan it.
//!
//! UTF-16 and UTF-32 (by byte order mark, else by declared charset, big-endian
//! without a mark as RFC 2781 says) are decoded. Any other bytes are read one
//! byte a character (Latin-1): every value the detectors find is ASCII, which
//! UTF-8 and the legacy charsets write as ASCII, and encoding back gives every
//! byte outside a marker exactly as sent, whatever the declared charset.

/// Types read as text besides `text/*`, `message/*` and `+json`/`+xml`/`+yaml`/`+toml`.
const TEXTUAL: [&str; 17] = [
    "application/json",
    "application/jsonl",
    "application/json-seq",
    "application/x-ndjson",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/csv",
    "application/sql",
    "application/graphql",
    "application/javascript",
    "application/ecmascript",
    "application/x-sh",
    "application/x-www-form-urlencoded",
    "application/x-pem-file",
    "application/pem-certificate-chain",
];

/// Wide encodings by byte order mark: UTF-32's before UTF-16's, which start alike.
const BOMS: [(&[u8], Wide); 4] = [
    (&[0xFF, 0xFE, 0, 0], Wide::Utf32Le),
    (&[0, 0, 0xFE, 0xFF], Wide::Utf32Be),
    (&[0xFF, 0xFE], Wide::Utf16Le),
    (&[0xFE, 0xFF], Wide::Utf16Be),
];

#[derive(Clone, Copy)]
enum Wide {
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

impl Wide {
    /// Python's codec name, which redaction encodes the masked text back with.
    fn codec(self) -> &'static str {
        match self {
            Wide::Utf16Le => "utf-16-le",
            Wide::Utf16Be => "utf-16-be",
            Wide::Utf32Le => "utf-32-le",
            Wide::Utf32Be => "utf-32-be",
        }
    }

    /// A declared charset, under the names and aliases Python's codecs know it by.
    fn declared(charset: &str) -> Option<Wide> {
        match charset.to_ascii_lowercase().replace('-', "_").as_str() {
            "utf_16" | "utf16" | "u16" | "utf_16_be" | "utf_16be" | "unicodebigunmarked" => {
                Some(Wide::Utf16Be)
            }
            "utf_16_le" | "utf_16le" | "unicodelittleunmarked" => Some(Wide::Utf16Le),
            "utf_32" | "utf32" | "u32" | "utf_32_be" | "utf_32be" => Some(Wide::Utf32Be),
            "utf_32_le" | "utf_32le" => Some(Wide::Utf32Le),
            _ => None,
        }
    }

    /// The text, or None if the bytes are not text of this encoding.
    fn decode(self, data: &[u8]) -> Option<String> {
        match self {
            Wide::Utf16Le | Wide::Utf16Be => {
                if !data.len().is_multiple_of(2) {
                    return None;
                }
                let units = data.chunks_exact(2).map(|c| match self {
                    Wide::Utf16Le => u16::from_le_bytes([c[0], c[1]]),
                    _ => u16::from_be_bytes([c[0], c[1]]),
                });
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()
            }
            Wide::Utf32Le | Wide::Utf32Be => {
                if !data.len().is_multiple_of(4) {
                    return None;
                }
                data.chunks_exact(4)
                    .map(|c| {
                        let b = [c[0], c[1], c[2], c[3]];
                        char::from_u32(match self {
                            Wide::Utf32Le => u32::from_le_bytes(b),
                            _ => u32::from_be_bytes(b),
                        })
                    })
                    .collect()
            }
        }
    }
}

/// A textual media's bytes as text: how to encode it back (Python's codec name), and
/// the length of the byte order mark the text leaves out.
pub struct MediaText {
    pub codec: &'static str,
    pub bom: usize,
    pub text: String,
}

/// The bytes as text when `mime_type` is textual, else None.
pub fn read(mime_type: &str, data: &[u8]) -> Option<MediaText> {
    let mut params = mime_type.split(';').map(|p| p.trim().to_ascii_lowercase());
    let kind = params.next().unwrap_or_default();
    let textual = kind.starts_with("text/")
        || kind.starts_with("message/")
        || TEXTUAL.contains(&kind.as_str())
        || ["+json", "+xml", "+yaml", "+toml"]
            .iter()
            .any(|s| kind.ends_with(s));
    if !textual {
        return None;
    }
    let marked = BOMS.iter().find(|(bom, _)| data.starts_with(bom));
    let (wide, bom) = match marked {
        Some((bom, wide)) => (Some(*wide), bom.len()),
        None => {
            let charset = params.find_map(|p| {
                let (name, value) = p.split_once('=')?;
                (name.trim() == "charset").then(|| value.trim().trim_matches('"').to_string())
            });
            (charset.as_deref().and_then(Wide::declared), 0)
        }
    };
    if let Some(wide) = wide {
        if let Some(text) = wide.decode(&data[bom..]) {
            return Some(MediaText {
                codec: wide.codec(),
                bom,
                text,
            });
        }
    }
    Some(MediaText {
        codec: "latin-1",
        bom: 0,
        text: data.iter().map(|&b| char::from(b)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_encodings() {
        assert!(read("image/png", b"x").is_none());
        let utf16 = read("text/plain", b"\xff\xfea\x00").expect("textual");
        assert_eq!(
            (utf16.codec, utf16.bom, utf16.text.as_str()),
            ("utf-16-le", 2, "a")
        );
        let declared = read("application/ld+json; charset=\"UTF-16\"", b"\x00a").expect("json");
        assert_eq!((declared.codec, declared.text.as_str()), ("utf-16-be", "a"));
        let odd = read("text/csv; charset=utf-16", b"\x00a\x00").expect("textual");
        assert_eq!((odd.codec, odd.text.as_str()), ("latin-1", "\u{0}a\u{0}"));
        let latin = read("text/plain; charset=utf-8", "é".as_bytes()).expect("textual");
        assert_eq!(
            (latin.codec, latin.text.as_str()),
            ("latin-1", "\u{c3}\u{a9}")
        );
    }
}
