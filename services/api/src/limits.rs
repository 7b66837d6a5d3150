//! Limits on the size of requests, measured at the edge: the codec of every Caseway service
//! decodes a request and, before the handler sees it, measures every string, bytes and
//! repeated field against the limit its proto declares (`(caseway.common.v1.limit)`), and
//! refuses a string holding the NUL character (no text column stores it), so an oversize or
//! unstorable request costs the server its decoding and nothing more. The measuring code is
//! generated from the protos by the build script, which refuses a request field without a
//! limit.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The most violations one answer names; a request that breaks more is refused just the same.
const MAX_REPORTED: usize = 20;

/// A step of the path to a field: a field name or a position in a repeated field.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Field(&'static str),
    Index(usize),
}

/// Where the measuring is in the request, and what it found over its limit.
#[derive(Debug, Default)]
pub struct Measure {
    path: Vec<Step>,
    violations: Vec<(String, String)>,
}

impl Measure {
    fn new() -> Self {
        Measure {
            path: Vec::with_capacity(8),
            violations: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.violations.len() >= MAX_REPORTED
    }

    fn field_path(&self, last: &'static str, index: Option<usize>) -> String {
        let mut text = String::new();
        for step in self
            .path
            .iter()
            .copied()
            .chain(std::iter::once(Step::Field(last)))
        {
            match step {
                Step::Field(name) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(name);
                }
                Step::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        if let Some(i) = index {
            text.push_str(&format!("[{i}]"));
        }
        text
    }

    fn over(&mut self, field: &'static str, index: Option<usize>, description: String) {
        if !self.full() {
            let path = self.field_path(field, index);
            self.violations.push((path, description));
        }
    }

    /// A string of at most `max` characters.
    pub fn string(&mut self, field: &'static str, value: &str, max: usize) {
        self.string_at(field, None, value, max);
    }

    fn string_at(&mut self, field: &'static str, index: Option<usize>, value: &str, max: usize) {
        // Bytes bound characters from above: most strings are decided without counting.
        if value.len() > max && value.chars().count() > max {
            self.over(field, index, format!("must have at most {max} characters"));
        } else if value.contains('\0') {
            // No text column can hold it, and no person types it.
            self.over(
                field,
                index,
                "must not contain the NUL character (U+0000)".into(),
            );
        }
    }

    /// Bytes of at most `max`.
    pub fn bytes(&mut self, field: &'static str, value: &[u8], max: usize) {
        if value.len() > max {
            self.over(field, None, format!("must have at most {max} bytes"));
        }
    }

    /// A repeated field of at most `max` items; false when it has more (its items are then not
    /// measured one by one).
    pub fn items(&mut self, field: &'static str, count: usize, max: usize) -> bool {
        if count > max {
            self.over(field, None, format!("must have at most {max} items"));
            return false;
        }
        !self.full()
    }

    /// Each of `values` of at most `max` characters.
    pub fn strings(&mut self, field: &'static str, values: &[String], max: usize) {
        for (index, value) in values.iter().enumerate() {
            if self.full() {
                return;
            }
            self.string_at(field, Some(index), value, max);
        }
    }

    /// A nested message.
    pub fn message<M: Bounded>(&mut self, field: &'static str, message: &M) {
        if self.full() {
            return;
        }
        self.path.push(Step::Field(field));
        message.measure(self);
        self.path.pop();
    }

    /// Each message of a repeated field.
    pub fn messages<M: Bounded>(&mut self, field: &'static str, messages: &[M]) {
        for (index, message) in messages.iter().enumerate() {
            if self.full() {
                return;
            }
            self.path.push(Step::Field(field));
            self.path.push(Step::Index(index));
            message.measure(self);
            self.path.pop();
            self.path.pop();
        }
    }

    /// A field mask: at most 50 paths of at most 128 characters.
    pub fn field_mask(&mut self, field: &'static str, mask: &prost_types::FieldMask) {
        self.path.push(Step::Field(field));
        if self.items("paths", mask.paths.len(), 50) {
            self.strings("paths", &mask.paths, 128);
        }
        self.path.pop();
    }
}

/// A message whose fields have limits. Request messages (`REQUEST`) are measured when the
/// server decodes them; every other message is measured only as a part of a request.
pub trait Bounded {
    /// Whether the message is the request of some method.
    const REQUEST: bool = false;

    /// Measures the message's fields against their limits.
    fn measure(&self, _measure: &mut Measure) {}
}

/// The violations of a request, or None when it is within every limit.
pub fn violations<M: Bounded>(message: &M) -> Option<Vec<(String, String)>> {
    let mut measure = Measure::new();
    message.measure(&mut measure);
    (!measure.violations.is_empty()).then_some(measure.violations)
}

fn refusal(violations: Vec<(String, String)>) -> Status {
    let mut details = tonic_types::ErrorDetails::new();
    let mut described = Vec::with_capacity(violations.len());
    for (field, description) in violations {
        described.push(format!("{field}: {description}"));
        details.add_bad_request_violation(field, description);
    }
    invalid(
        details,
        format!("invalid argument: {}", described.join("; ")),
    )
}

/// INVALID_ARGUMENT with `details`, and the `ErrorInfo` every Caseway error carries.
fn invalid(mut details: tonic_types::ErrorDetails, message: String) -> Status {
    use tonic_types::StatusExt;
    details.set_error_info(
        crate::reason_text(crate::caseway::common::v1::ErrorReason::FieldInvalid),
        crate::ERROR_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(tonic::Code::InvalidArgument, message, details)
}

/// The protobuf codec of every Caseway service, measuring requests as it decodes them.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder {
            inner: ProstDecoder::new(BufferSettings::default()),
        }
    }
}

/// Decodes with prost, then measures a request against its limits.
pub struct BoundedDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U> Decoder for BoundedDecoder<U>
where
    U: prost::Message + Default + Bounded + Send + 'static,
{
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let message = match self.inner.decode(src) {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(None),
            // prost's decode error is INTERNAL in tonic; a request that is not a valid
            // message of its type is the caller's to fix.
            Err(status) if U::REQUEST => {
                return Err(invalid(
                    tonic_types::ErrorDetails::new(),
                    format!(
                        "the request is not a valid message of its type: {}",
                        status.message()
                    ),
                ));
            }
            Err(status) => return Err(status),
        };
        if U::REQUEST
            && let Some(violations) = violations(&message)
        {
            return Err(refusal(violations));
        }
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::v1::ListTenantsRequest;

    #[test]
    fn a_string_with_the_nul_character_is_refused_naming_its_field() {
        let request = ListTenantsRequest {
            slug: "a\0b".into(),
            ..Default::default()
        };
        let found = violations(&request).expect("refused");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "slug");
        assert!(found[0].1.contains("NUL"), "{:?}", found[0]);
        let fine = ListTenantsRequest {
            slug: "ab".into(),
            ..Default::default()
        };
        assert_eq!(violations(&fine), None);
    }
}
