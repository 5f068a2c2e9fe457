//! Whether a message's wire holds fields protobuf's parser keeps as unknown.
//!
//! Ingest refuses such events (their fields would be dropped). Asking the
//! parsed request (its size before and after discarding unknown fields) cost
//! ~2 us an event; this walk, a fraction. It answers "maybe" for anything it
//! does not read: the caller then asks the parsed message.

use crate::schema::Schema;
use crate::wire::{self, Raw, Reader};

/// True unless every field at every depth is one the type declares, with its
/// wire type (a repeated scalar may come packed or not). Also true where the
/// bytes are not read (a group, a malformed field): not a verdict, a "maybe".
pub fn maybe(schema: &Schema, mi: usize, bytes: &[u8]) -> bool {
    let msg = &schema.messages[mi];
    let mut r = Reader::new(bytes);
    while !r.done() {
        let Ok((number, wire, raw)) = r.field() else {
            return true;
        };
        let Some(f) = msg.index(number).map(|i| &msg.fields[i]) else {
            return true;
        };
        let expected = wire::wire_type(f.ty);
        if wire != expected && !(f.repeated && wire == 2) {
            return true;
        }
        if let (Some(m), Raw::Len(inner)) = (f.message, raw) {
            if maybe(schema, m, inner) {
                return true;
            }
        }
    }
    false
}
