//! InitiatePayment: money between two counterparties; the rules are [`crate::payment`]'s.

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::internal;
use crate::context::Hodi;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{InitiatePaymentCommand, InitiatePaymentReply};

#[derive(Debug)]
pub struct InitiatePayment {
    command: InitiatePaymentCommand,
}

impl InitiatePayment {
    pub fn from_proto(command: InitiatePaymentCommand) -> Self {
        InitiatePayment { command }
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<Entry, RemoteError> {
        let done = crate::payment::initiate::initiate(hodi, &session.org_id, &session.app_id, self.command)
            .await
            .map_err(internal)?;
        Ok(Entry::InitiatePayment(InitiatePaymentReply {
            status: done.status as i32,
            description: done.description,
            transaction_id: done.transaction_id,
            debit_customer_id: done.debit_customer_id,
            credit_customer_id: done.credit_customer_id,
        }))
    }
}
