//! Protocol Buffers wire format, read field by field (no generated code: the
//! schema comes from the Python descriptors at run time).

use crate::Error;

/// One field occurrence as it appears on the wire.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

/// The wire type a field of this descriptor type (`FieldDescriptor.TYPE_*`) uses.
pub fn wire_type(ty: u8) -> u8 {
    match ty {
        TYPE_DOUBLE | TYPE_FIXED64 | TYPE_SFIXED64 => 1,
        TYPE_FLOAT | TYPE_FIXED32 | TYPE_SFIXED32 => 5,
        TYPE_STRING | TYPE_BYTES | TYPE_MESSAGE => 2,
        _ => 0,
    }
}

pub const TYPE_DOUBLE: u8 = 1;
pub const TYPE_FLOAT: u8 = 2;
pub const TYPE_INT64: u8 = 3;
pub const TYPE_UINT64: u8 = 4;
pub const TYPE_INT32: u8 = 5;
pub const TYPE_FIXED64: u8 = 6;
pub const TYPE_FIXED32: u8 = 7;
pub const TYPE_BOOL: u8 = 8;
pub const TYPE_STRING: u8 = 9;
pub const TYPE_MESSAGE: u8 = 11;
pub const TYPE_BYTES: u8 = 12;
pub const TYPE_UINT32: u8 = 13;
pub const TYPE_ENUM: u8 = 14;
pub const TYPE_SFIXED32: u8 = 15;
pub const TYPE_SFIXED64: u8 = 16;
pub const TYPE_SINT32: u8 = 17;
pub const TYPE_SINT64: u8 = 18;

/// A cursor over one message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, Error> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(Error::new("truncated varint"));
            };
            self.pos += 1;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::new("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::new("truncated field"));
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field: (number, wire type, value).
    pub fn field(&mut self) -> Result<(u32, u8, Raw<'a>), Error> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| Error::new("field number too large"))?;
        let wire = (key & 7) as u8;
        let raw = match wire {
            0 => Raw::Varint(self.varint()?),
            1 => Raw::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let n =
                    usize::try_from(self.varint()?).map_err(|_| Error::new("length too large"))?;
                Raw::Len(self.take(n)?)
            }
            5 => Raw::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            _ => {
                return Err(Error::new(format!(
                    "field {number}: unsupported wire type {wire}"
                )))
            }
        };
        Ok((number, wire, raw))
    }
}

/// The elements of a packed repeated scalar field.
pub fn unpack<'a>(bytes: &'a [u8], ty: u8, mut out: impl FnMut(Raw<'a>)) -> Result<(), Error> {
    let mut r = Reader::new(bytes);
    while !r.done() {
        out(match wire_type(ty) {
            0 => Raw::Varint(r.varint()?),
            1 => Raw::Fixed64(u64::from_le_bytes(r.take(8)?.try_into().unwrap())),
            _ => Raw::Fixed32(u32::from_le_bytes(r.take(4)?.try_into().unwrap())),
        });
    }
    Ok(())
}
