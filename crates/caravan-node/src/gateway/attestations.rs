//! Validators' signed evaluations of models: recorded in the log (the economy checks each
//! signature), they make the validator a member of the model's validator role.

use caravan_core::Event;
use caravan_core::attestation::recover;

use super::{Gateway, GatewayError};

impl Gateway {
    /// Records a validator's signed evaluation of `model_name`; the economy checks the
    /// signature. Blocking: waits until it is durable.
    pub fn attest(
        &self,
        model_name: &str,
        attestation: caravan_core::Attestation,
    ) -> Result<caravan_core::Attestation, GatewayError> {
        let model = self.resolve_any_model(model_name)?;
        if attestation.model != model {
            return Err(GatewayError::BadParam {
                param: "model".into(),
                message: format!(
                    "the attestation is signed for model {}, not {model}",
                    attestation.model
                ),
            });
        }
        if let Ok(signer) = recover(&attestation.digest(), &attestation.signature)
            && signer != attestation.validator
        {
            return Err(GatewayError::NotValidatorsSignature {
                signer,
                validator: attestation.validator,
            });
        }
        let mut submitted = self
            .journal()
            .submit(vec![Event::ValidationAttested(attestation.clone())])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::BadParam {
                param: "signature".into(),
                message: why.to_string(),
            });
        }
        Ok(attestation)
    }

    /// A model's attestations, in the order they were accepted.
    pub fn attestations(
        &self,
        model_name: &str,
    ) -> Result<Vec<caravan_core::Attestation>, GatewayError> {
        let model = self.resolve_any_model(model_name)?;
        Ok(self
            .journal()
            .read(|j| j.economy().attestations(&model).to_vec()))
    }
}
