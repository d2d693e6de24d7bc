//! Just enough protobuf wire format for the few containerd messages the shim reads
//! by hand (containerd-shim-protos has no bootstrap or runc options types): a message
//! as its list of fields, and a writer for the replies.

use containerd_shim_protos::protobuf::rt::WireType;
use containerd_shim_protos::protobuf::{CodedInputStream, CodedOutputStream};

use crate::error::{Error, Result};

/// One field's value; fixed-width fields (no message tent reads has one) are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

/// The fields of the message `bytes`, in wire order. `what` names the message in errors.
pub fn fields(bytes: &[u8], what: &str) -> Result<Vec<(u32, Value)>> {
    let bad = |e: containerd_shim_protos::protobuf::Error| {
        Error::InvalidArgument(format!("malformed {what}: {e}"))
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut out = Vec::new();
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(Error::InvalidArgument(format!(
                "malformed {what}: field number 0"
            )));
        }
        let wire = WireType::new(wire)
            .ok_or_else(|| Error::InvalidArgument(format!("malformed {what}: wire type {wire}")))?;
        match wire {
            WireType::Varint => out.push((
                field,
                Value::Varint(input.read_raw_varint64().map_err(bad)?),
            )),
            WireType::LengthDelimited => {
                out.push((field, Value::Bytes(input.read_bytes().map_err(bad)?)))
            }
            other => input.skip_field(other).map_err(bad)?,
        }
    }
    Ok(out)
}

impl Value {
    /// The value as a UTF-8 string; `name` is the field's name for errors.
    pub fn string(self, what: &str, name: &str) -> Result<String> {
        match self {
            Value::Bytes(b) => String::from_utf8(b).map_err(|_| {
                Error::InvalidArgument(format!("malformed {what}: {name} is not UTF-8"))
            }),
            Value::Varint(_) => Err(Error::InvalidArgument(format!(
                "malformed {what}: {name} is not a string"
            ))),
        }
    }

    pub fn bytes(self, what: &str, name: &str) -> Result<Vec<u8>> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Varint(_) => Err(Error::InvalidArgument(format!(
                "malformed {what}: {name} is not length-delimited"
            ))),
        }
    }

    pub fn varint(self, what: &str, name: &str) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            Value::Bytes(_) => Err(Error::InvalidArgument(format!(
                "malformed {what}: {name} is not a varint"
            ))),
        }
    }
}

/// Writes a message with `write`; `what` names it in errors.
pub fn encode(
    what: &str,
    write: impl FnOnce(&mut CodedOutputStream<'_>) -> containerd_shim_protos::protobuf::Result<()>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut stream = CodedOutputStream::vec(&mut out);
        write(&mut stream)
            .and_then(|_| stream.flush())
            .map_err(|e| Error::Internal(format!("encode {what}: {e}")))?;
    }
    Ok(out)
}
