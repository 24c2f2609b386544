//! Agents: assets that compose models. An agent's program is a short pipeline — optionally
//! classify the user's message with a first-party classifier, then answer with a chat model whose
//! system prompt can name the label — and its asset declares each model it calls as a
//! `COMPOSED_OF` parent. A call to the agent is charged the agent's own price plus what each
//! component it actually called costs, in one `CallMetered` event whose parts name each
//! component, so every component's lineage is paid from that call; the trace of steps is kept
//! with the charge.

use caravan_core::{
    Address, AssetId, AssetKind, EdgeKind, Hash32, Licence, Manifest, ParentEdge, Ppm, keccak256,
};
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

    /// The manifest of the agent asset that runs this program: its content is the program's
    /// hash and every model it calls is a `COMPOSED_OF` parent at `component_share`, so each
    /// call pays their lineages.
    pub fn manifest(
        &self,
        name: String,
        owner: Address,
        licence: Licence,
        component_share: Ppm,
    ) -> Manifest {
        let mut manifest = Manifest {
            kind: AssetKind::Agent,
            name,
            owner,
            content: self.content_hash(),
            licence,
            parents: self
                .components()
                .into_iter()
                .map(|parent| ParentEdge {
                    parent,
                    kind: EdgeKind::ComposedOf,
                    share: component_share,
                })
                .collect(),
            roles: Vec::new(),
        };
        manifest.normalise();
        manifest
    }

    /// The system message for a classification `label`.
    pub fn system_message(&self, label: Option<&str>) -> String {
        self.chat.system.replace("{label}", label.unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_core::lineage::Lineage;

    /// The manifest an agent program makes is one the catalogue accepts for it: every model it
    /// calls is a parent, and the content is the program.
    #[test]
    fn an_agents_manifest_declares_every_model_its_program_calls() {
        let mut lineage = Lineage::default();
        let mut model = |name: &str| {
            let manifest = Manifest {
                kind: AssetKind::Model,
                name: name.into(),
                owner: Address::from_label(name),
                content: keccak256(name.as_bytes()),
                licence: Licence::OpenUse,
                parents: Vec::new(),
                roles: Vec::new(),
            };
            lineage.register(manifest).unwrap().0
        };
        let (classifier, chat) = (model("classifier"), model("chat"));
        let program = AgentProgram {
            classify: Some(ClassifyStep {
                model: classifier,
                field: "text".into(),
            }),
            chat: ChatStep {
                model: chat,
                system: "The customer is {label}.".into(),
            },
        };
        let share = Ppm::new(250_000).unwrap();
        let manifest = program.manifest(
            "assistant".into(),
            Address::from_label("shop"),
            Licence::OpenUse,
            share,
        );
        assert_eq!(manifest.content, program.content_hash());
        let mut parents: Vec<(AssetId, EdgeKind, Ppm)> = manifest
            .parents
            .iter()
            .map(|edge| (edge.parent, edge.kind, edge.share))
            .collect();
        parents.sort_by_key(|(parent, ..)| *parent);
        let mut expected = vec![
            (classifier, EdgeKind::ComposedOf, share),
            (chat, EdgeKind::ComposedOf, share),
        ];
        expected.sort_by_key(|(parent, ..)| *parent);
        assert_eq!(parents, expected);
        let events = super::super::catalogue::agent_events(manifest, program, &lineage).unwrap();
        assert_eq!(events.len(), 2, "the asset and the record of its program");
    }
}
