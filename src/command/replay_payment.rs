//! ReplayPayment and ReplayPaymentStatusUpdate: import payment history once per provider
//! transaction id. History is recorded in the customers' transaction logs; it moves no balance
//! (money that already moved elsewhere is not Hodi's to move again) and fires no notification.

use std::sync::Arc;

use hodi_rsocket::RemoteError;
use prost::Message;

use super::internal;
use crate::context::Hodi;
use crate::convert::stored_number;
use crate::payment::initiate::resolve;
use crate::payment::to_minor;
use crate::socket::Session;
use crate::store::payments::{Start, Started, Transaction};
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{PaymentStatus, ReplayPaymentCommand, ReplayPaymentReply, ReplayPaymentStatusUpdateCommand};

fn reply(status: bool, description: impl Into<String>, t: Option<&Transaction>) -> Entry {
    Entry::ReplayPayment(ReplayPaymentReply {
        status,
        description: description.into(),
        transaction_id: t.map(|t| t.id.clone()),
        debit_customer_id: t.and_then(|t| t.debit_customer_id.clone()),
        credit_customer_id: t.and_then(|t| t.credit_customer_id.clone()),
    })
}

/// The SDK sends an unset time as 0 seconds; that means "now" here, like no time at all.
fn millis(t: &Option<prost_types::Timestamp>) -> i64 {
    crate::convert::bounds::replayed(&t.filter(|t| t.seconds > 0 || t.nanos > 0))
}

#[derive(Debug)]
pub enum ReplayPayment {
    Payment(ReplayPaymentCommand),
    Status(ReplayPaymentStatusUpdateCommand),
}

impl ReplayPayment {
    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        match self {
            ReplayPayment::Payment(c) => payment(hodi, session, c).await,
            ReplayPayment::Status(c) => status(hodi, session, c).await,
        }
    }
}

async fn payment(hodi: &Hodi, session: &Session, c: ReplayPaymentCommand) -> Result<Entry, RemoteError> {
    let org_id = session.org_id.as_str();
    if c.provider_transaction_id.trim().is_empty() {
        return Ok(reply(false, "provider_transaction_id is required", None));
    }
    let status = PaymentStatus::try_from(c.status).unwrap_or(PaymentStatus::Unspecified);
    if status == PaymentStatus::Unspecified {
        return Ok(reply(false, "status is required", None));
    }
    let Some(value) = c.value.as_ref() else { return Ok(reply(false, "value is required", None)) };
    let (currency, amount) = match to_minor(value) {
        Ok(v) => v,
        Err(e) => return Ok(reply(false, e, None)),
    };
    let debit = match resolve(hodi, org_id, c.debit_party.as_ref()).await.map_err(internal)? {
        Ok(p) => p,
        Err((_, d)) => return Ok(reply(false, format!("debit party: {d}"), None)),
    };
    let credit = match resolve(hodi, org_id, c.credit_party.as_ref()).await.map_err(internal)? {
        Ok(p) => p,
        Err((_, d)) => return Ok(reply(false, format!("credit party: {d}"), None)),
    };
    let at = millis(&c.created_at);
    let purse_id =
        [c.debit_party.as_ref(), c.credit_party.as_ref()].into_iter().flatten().find_map(|p| match &p.party {
            Some(crate::wire::payment_counter_party::Party::Purse(p)) => Some(p.purse_id.clone()),
            _ => None,
        });
    let t = Transaction {
        debit_party: c.debit_party.clone().unwrap_or_default().encode_to_vec(),
        credit_party: c.credit_party.clone().unwrap_or_default().encode_to_vec(),
        debit_customer_id: debit.customer_id(),
        credit_customer_id: credit.customer_id(),
        purse_id,
        provider_transaction_id: Some(c.provider_transaction_id.clone()),
        narration: c.narration.clone(),
        ..Transaction::draft(org_id, &session.app_id, "replay", &currency, amount, at)
    };
    let started = hodi
        .store
        .start_transaction(t.clone(), Start::Record { status: status as i32 }, status as i32, &[], None)
        .await
        .map_err(internal)?;
    match started {
        Started::Duplicate(id) => {
            let existing = hodi.store.transaction(&id).await.map_err(internal)?;
            Ok(reply(true, "already imported", existing.as_ref()))
        }
        _ => Ok(reply(true, "imported", Some(&t))),
    }
}

async fn status(hodi: &Hodi, session: &Session, c: ReplayPaymentStatusUpdateCommand) -> Result<Entry, RemoteError> {
    let status = PaymentStatus::try_from(c.status).unwrap_or(PaymentStatus::Unspecified);
    if status == PaymentStatus::Unspecified {
        return Ok(reply(false, "status is required", None));
    }
    let found =
        hodi.store.transaction_by_provider_id(&session.org_id, &c.provider_transaction_id).await.map_err(internal)?;
    let Some(t) = found else {
        return Ok(reply(false, format!("no payment has provider id {:?}", c.provider_transaction_id), None));
    };
    if let Some(number) = &c.customer_number {
        let number = match stored_number(number) {
            Ok(n) => n,
            Err(e) => return Ok(reply(false, e.to_string(), None)),
        };
        let (customer, _) = hodi.store.customer_by_number(&session.org_id, &number).await.map_err(internal)?;
        if t.debit_customer_id.as_deref() != Some(&customer.id) && t.credit_customer_id.as_deref() != Some(&customer.id)
        {
            return Ok(reply(false, "the payment does not involve this customer", None));
        }
    }
    if t.kind != "replay" {
        return Ok(reply(false, "only replayed payments take replayed status updates", Some(&t)));
    }
    hodi.store.set_transaction_status(&t.id, status as i32, millis(&c.updated_at)).await.map_err(internal)?;
    Ok(reply(true, "updated", Some(&t)))
}
