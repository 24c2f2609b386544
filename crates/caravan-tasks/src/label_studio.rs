//! Label Studio's names for the tags of a labeling config. Label Studio matches every result
//! to its config by the names of the control tag that answers and of the object tag it labels,
//! so caravan keeps the names a Label Studio import used and writes them back in its exports.

use serde::{Deserialize, Serialize};

use crate::schema::LabelSchema;

/// The longest tag name taken, from a file or a requester: a config's names are short words.
pub const MAX_TAG_NAME_BYTES: usize = 256;

/// Checks a tag name, given by a requester for an export or read from a Label Studio file.
pub fn check_tag_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TAG_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(format!(
            "a Label Studio tag name is the `name` of a tag in its config: 1 to {MAX_TAG_NAME_BYTES} bytes, no control characters"
        ));
    }
    Ok(())
}

/// The names a Label Studio config gives its tags: the control tag that answers (`from_name`,
/// `<Choices name="sentiment" …>`) and the object tag it labels (`to_name`,
/// `<Text name="text" …>`). Label Studio matches results to its config by these names, so an
/// export shows its labels in a Label Studio project only if it uses that project's names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelStudioTags {
    pub from_name: String,
    pub to_name: String,
}

impl LabelStudioTags {
    /// The names caravan uses when it knows no better: `label`, on `text` (a span schema's
    /// text field).
    pub fn default_for(schema: &LabelSchema) -> LabelStudioTags {
        LabelStudioTags {
            from_name: "label".into(),
            to_name: match schema {
                LabelSchema::Spans { text_field, .. } => text_field.clone(),
                _ => "text".into(),
            },
        }
    }
}
