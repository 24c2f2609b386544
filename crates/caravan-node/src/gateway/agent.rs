//! Agents: assets that compose models. An agent's program is a short pipeline — optionally
//! classify the user's message with a first-party classifier, then answer with a chat model whose
//! system prompt can name the label — and its asset declares each model it calls as a
//! `COMPOSED_OF` parent. A call to the agent is charged the agent's own price plus what each
//! component it actually called costs, in one `CallMetered` event whose parts name each
//! component, so every component's lineage is paid from that call; the trace of steps is kept
//! with the charge.

use caravan_core::{AssetId, Hash32, keccak256};
use serde::{Deserialize, Serialize};

/// What an agent does with a chat request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProgram {
    /// First, classify the last user message (as the item field `field`) with this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classify: Option<ClassifyStep>,
    /// Then answer with this chat model.
    pub chat: ChatStep,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyStep {
    /// The classifier: an asset id.
    pub model: AssetId,
    /// The item field the classifier reads the message from.
    pub field: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatStep {
    /// The chat model: an asset id of an upstream model.
    pub model: AssetId,
    /// A system message put before the conversation; `{label}` is replaced by the
    /// classification step's label.
    #[serde(default)]
    pub system: String,
}

impl AgentProgram {
    pub fn content_hash(&self) -> Hash32 {
        keccak256(
            serde_json::to_string(self)
                .expect("a program serialises")
                .as_bytes(),
        )
    }

    /// The models the program calls, in order.
    pub fn components(&self) -> Vec<AssetId> {
        self.classify
            .iter()
            .map(|step| step.model)
            .chain([self.chat.model])
            .collect()
    }

    /// The system message for a classification `label`.
    pub fn system_message(&self, label: Option<&str>) -> String {
        self.chat.system.replace("{label}", label.unwrap_or(""))
    }
}
