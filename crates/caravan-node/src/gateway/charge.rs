//! Charging a call: hold its most before it runs, commit one `CallMetered` event with what it
//! actually cost (durable before the answer, unless the node answers before the commit), sign
//! the receipt, and keep the answer for retries under an idempotency key.

use caravan_core::{Address, Amount, CallPart, Event, Hash32, MeteredCall};
use caravan_store::{AnswerRow, now_ms};
use serde_json::{Value, json};

use super::idempotency::{self, Admission, Remembered, Stored};
use super::{
    Gateway, GatewayError, KEPT_ANSWERS_COMMIT_WITHIN, QUEUED_CHARGES_COMMIT_WITHIN, Served,
    ServedModel,
};
use crate::keys::ApiKey;
use crate::meter;

impl Gateway {
    /// Admits a request sent with an idempotency key (see [`Idempotency::admit`]). A request
    /// memory no longer holds but may have charged is looked up in the store's index of the
    /// day's charged requests (one point read): if it was charged, among the answers kept in the
    /// store, replayed if it is the same request and refused if its body differs; if it was not
    /// (the filter's false positive), admitted. Only those paths read the store.
    pub fn admit_keyed(
        &self,
        request: Hash32,
        fingerprint: Hash32,
    ) -> Result<Admission, GatewayError> {
        let now = now_ms();
        match self.idempotency.admit(request, fingerprint, now) {
            Remembered::Settled(Admission::ChargedEarlier) => {}
            Remembered::Settled(admission) => return Ok(admission),
            Remembered::MaybeCharged => {
                // Charged less than a day ago, as memory counts it.
                let since = (now + 1).saturating_sub(idempotency::RETENTION_MS);
                if self
                    .journal()
                    .read(|j| j.charged_at(request, since))?
                    .is_none()
                {
                    return Ok(self.idempotency.admit_uncharged(request, fingerprint, now));
                }
            }
        }
        let kept = self.journal().read(|j| j.answer(request, now))?;
        Ok(
            match kept.and_then(|row| Some((row.fingerprint, Stored::decode(&row.answer)?))) {
                Some((first, stored)) if first == fingerprint => Admission::Replay(stored),
                Some(_) => Admission::DifferentBody,
                None => Admission::ChargedEarlier,
            },
        )
    }

    /// Keeps a served call's answer for retries under its idempotency key: in memory, and (up
    /// to [`idempotency::KEPT_ANSWER_MAX_BYTES`]) in the store, which a retry after a restart,
    /// or after memory let the answer go, is answered from. Never waits for the store.
    pub fn keep_answer(&self, request: Hash32, stored: Stored) {
        let answer =
            (stored.body.len() <= idempotency::KEPT_ANSWER_MAX_BYTES).then(|| stored.encode());
        let Some(finished) = self.idempotency.finish(request, stored) else {
            return;
        };
        if let Some(answer) = answer {
            let row = AnswerRow {
                key: request,
                fingerprint: finished.fingerprint,
                kept_at_ms: now_ms(),
                expires_ms: finished.admitted_ms + idempotency::RETENTION_MS,
                answer,
            };
            self.journal()
                .read(|j| j.keep_answer(row, KEPT_ANSWERS_COMMIT_WITHIN));
        }
    }

    /// Holds the most a call of the key's payer can cost, or says what is available.
    pub(crate) fn hold(
        &self,
        key: &ApiKey,
        token: Address,
        amount: Amount,
    ) -> Result<meter::Hold, GatewayError> {
        self.meter
            .reserve(self.journal(), key.payer, token, amount)
            .map_err(|shortfall| GatewayError::InsufficientQuota {
                payer: key.payer,
                token,
                needed: shortfall.needed,
                available: shortfall.available,
            })
    }

    /// Commits the call's charge (or queues it, with [`ChargeDurability::Queued`]); returns the
    /// event's sequence number and time.
    /// The hold is released as the charge is applied (see [`Meter::settle`]).
    pub(crate) fn charge(
        &self,
        hold: meter::Hold,
        key: &ApiKey,
        model: &ServedModel,
        parts: Vec<CallPart>,
        trace: Value,
        request: Option<Hash32>,
    ) -> Result<(u64, u64), GatewayError> {
        let call = MeteredCall {
            payer: key.payer,
            token: model.token,
            node: self.node(),
            request,
            parts,
            trace: trace.to_string(),
        };
        let window = if self.answers_before_commit() {
            QUEUED_CHARGES_COMMIT_WITHIN
        } else {
            std::time::Duration::ZERO
        };
        let pending = self.meter.settle(hold, || {
            self.journal()
                .enqueue_within(vec![Event::CallMetered(call)], window)
        });
        let queue = self
            .queued_commits
            .as_ref()
            .filter(|_| !self.store_failing());
        let mut submitted = match queue {
            None => {
                let submitted = pending.wait()?;
                // Durable again: queued answers may go on.
                self.store_failing
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                submitted
            }
            Some(commits) => {
                let (submitted, commit) = pending.detach();
                if let Err(unsent) = commits.send(commit) {
                    self.journal().await_commit(unsent.0)?;
                }
                submitted
            }
        };
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(GatewayError::ChargeRefused(why.to_string()));
        }
        let envelope = submitted.accepted.remove(0);
        Ok((envelope.seq, envelope.at_ms))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receipted(
        &self,
        body: Value,
        id: &str,
        key: &ApiKey,
        model: &ServedModel,
        cost: Amount,
        calls: u32,
        at_ms: u64,
    ) -> Served {
        let receipt = json!({
            "call": id,
            "payer": key.payer,
            "key": key.id,
            "model": model.asset,
            "token": model.token,
            "charged": cost.to_string(),
            "calls": calls,
            "node": self.node(),
            "at_ms": at_ms,
        })
        .to_string();
        let signature = self.signer.sign(receipt.as_bytes());
        Served {
            body,
            receipt,
            signature,
        }
    }
}
