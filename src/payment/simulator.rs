//! The customer's side of payments: offering checkouts and payouts to the simulator sockets, and the
//! simulator's ReceivePayment (a customer paying into an org's channel number) and
//! UpdatePaymentStatus (confirming or declining a checkout, settling or failing a pending payment).

use prost::Message;

use super::initiate::{external_key, payment_channel_name, status_notices};
use super::{is_failure, is_pending, to_minor};
use crate::context::Hodi;
use crate::socket::Session;
use crate::store::customers::StoredNumber;
use crate::store::now_ms;
use crate::store::payments::{AccountKey, Finish, Notice, Start, Started, Transaction};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::{
    payment_counter_party, CustomerNumberProvider, PaymentChannelNumber, PaymentCounterParty,
    PaymentCustomerCounterParty, PaymentPurseCounterParty, PaymentStatus, ReceivePaymentSimulatorCommand,
    ReceivedPaymentNotification, ServerToAppCustomerNotification, SimulatorToServerCommandReply,
    UpdatePaymentStatusSimulatorCommand,
};

fn reply(status: bool, description: impl Into<String>) -> SimulatorToServerCommandReply {
    SimulatorToServerCommandReply { status, description: description.into(), message: None }
}

/// Ends a pending transaction with `status` (success settles; a failure releases any hold) and
/// queues its `payment_status`. Ok(None) when it was not pending.
pub async fn finish(hodi: &Hodi, id: &str, status: PaymentStatus) -> anyhow::Result<Option<i32>> {
    let success = status == PaymentStatus::Success;
    let done = hodi
        .store
        .finish_transaction(id, Finish { status: status as i32, settle: success }, is_pending, |t, final_status| {
            status_notices(t, final_status, t.app_id.as_deref().unwrap_or_default())
        })
        .await?;
    Ok(done.map(|(_, s)| s))
}

/// ReceivePayment: a customer pays into one of the org's payment channel numbers. The money lands in
/// the org's oldest purse in that currency; the app hears `received_payment`.
pub async fn receive(
    hodi: &Hodi,
    session: &Session,
    cmd: ReceivePaymentSimulatorCommand,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    let org_id = session.org_id.as_str();
    if cmd.transaction_id.trim().is_empty() {
        return Ok(reply(false, "transaction_id (the provider's) is required"));
    }
    let Some(channel) = cmd.channel_number.clone() else { return Ok(reply(false, "channel_number is required")) };
    let Some(name) = payment_channel_name(channel.channel) else {
        return Ok(reply(false, "channel_number has no payment channel"));
    };
    if !hodi.store.channel_provisioned(org_id, name, &channel.number).await? {
        return Ok(reply(false, format!("{name} number {:?} is not provisioned for this org", channel.number)));
    }
    if cmd.customer_number.trim().is_empty() {
        return Ok(reply(false, "customer_number is required"));
    }
    let Some(value) = cmd.value.as_ref() else { return Ok(reply(false, "value is required")) };
    let (currency, amount) = match to_minor(value) {
        Ok(v) => v,
        Err(e) => return Ok(reply(false, e)),
    };
    let status = PaymentStatus::try_from(cmd.status).unwrap_or(PaymentStatus::Unspecified);
    let payment = Received {
        org_id,
        app_id: &session.app_id,
        channel,
        customer_number: &cmd.customer_number,
        provider_transaction_id: &cmd.transaction_id,
        currency: &currency,
        amount,
        status,
        provider: None,
    };
    Ok(match record_received(hodi, payment).await? {
        Recorded::Stored(id) => reply(true, format!("received as {id}")),
        Recorded::Duplicate(existing) => {
            reply(false, format!("duplicate: provider transaction {:?} is {existing}", cmd.transaction_id))
        }
        Recorded::Refused(why) => reply(false, why),
    })
}

/// A payment a customer made into one of the org's payment channel numbers, as reported.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    pub org_id: &'a str,
    /// The app that hears of it.
    pub app_id: &'a str,
    pub channel: PaymentChannelNumber,
    pub customer_number: &'a str,
    /// The provider's id: a payment is recorded once per id.
    pub provider_transaction_id: &'a str,
    pub currency: &'a str,
    /// Minor units.
    pub amount: i64,
    /// Success settles it; pending waits; a failure is recorded without moving money.
    pub status: PaymentStatus,
    /// The real provider that reported it (None: a simulator).
    pub provider: Option<&'a str>,
}

/// What became of a received payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Stored(String),
    /// Reported before: the transaction it is.
    Duplicate(String),
    Refused(String),
}

/// Records a payment into the org's oldest purse in its currency; the app hears
/// `received_payment` in the same transaction.
pub async fn record_received(hodi: &Hodi, payment: Received<'_>) -> anyhow::Result<Recorded> {
    let Received {
        org_id,
        app_id,
        channel,
        customer_number,
        provider_transaction_id,
        currency,
        amount,
        status,
        provider,
    } = payment;
    let Some(purse_id) = hodi.store.org_purse(org_id, currency).await? else {
        return Ok(Recorded::Refused(format!("the org has no purse in {currency} to receive into")));
    };
    let start = match status {
        PaymentStatus::Success => Start::SettleNow { settled: status as i32 },
        s if is_pending(s as i32) => Start::Await { pending: s as i32 },
        s if is_failure(s) => Start::Record { status: s as i32 },
        _ => return Ok(Recorded::Refused("status must be a pending, success or failure PaymentStatus".into())),
    };
    let number = StoredNumber {
        provider: CustomerNumberProvider::Cellular as i32,
        number: customer_number.to_string(),
        partition: String::new(),
    };
    let (customer, _) = hodi.store.customer_by_number(org_id, &number).await?;
    let debit_party = PaymentCounterParty {
        party: Some(payment_counter_party::Party::Customer(PaymentCustomerCounterParty {
            customer_number: Some(crate::convert::wire_number(&number)),
            channel_number: Some(channel.clone()),
        })),
    };
    let credit_party = PaymentCounterParty {
        party: Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty { purse_id: purse_id.clone() })),
    };
    let debit_key = external_key(&super::initiate::Party::Customer {
        customer_id: customer.id.clone(),
        number: number.clone(),
        channel: channel.clone(),
        provider: None,
    });
    let debit_account = hodi.store.open_account(org_id, &debit_key, currency).await?.id;
    let credit_account = hodi.store.open_account(org_id, &AccountKey::Purse(purse_id.clone()), currency).await?.id;
    let t = Transaction {
        debit_party: debit_party.encode_to_vec(),
        credit_party: credit_party.encode_to_vec(),
        debit_account: Some(debit_account),
        credit_account: Some(credit_account),
        debit_customer_id: Some(customer.id.clone()),
        purse_id: Some(purse_id.clone()),
        provider_transaction_id: Some(provider_transaction_id.to_string()),
        provider: provider.map(str::to_string),
        ..Transaction::draft(org_id, app_id, "received", currency, amount, now_ms())
    };
    let id = t.id.clone();
    let notice = Notice::Customer {
        app_id: app_id.to_string(),
        customer_id: customer.id.clone(),
        entry: ServerToAppCustomerNotification {
            entry: Some(AppEntry::ReceivedPayment(ReceivedPaymentNotification {
                purse_id,
                transaction_id: id.clone(),
                customer_number: Some(crate::convert::wire_number(&number)),
                channel_number: Some(channel),
                value: Some(super::to_cash(currency, amount)),
                status: status as i32,
            })),
            ..Default::default()
        }
        .encode_to_vec(),
    };
    let started =
        hodi.store.start_transaction(t, start, PaymentStatus::InsufficientFunds as i32, &[notice], None).await?;
    Ok(match started {
        Started::Stored(_) => Recorded::Stored(id),
        Started::Duplicate(existing) => Recorded::Duplicate(existing),
        Started::Insufficient => Recorded::Refused("insufficient funds".into()),
    })
}

/// UpdatePaymentStatus: moves a pending transaction of the org (by Hodi's id or the provider's)
/// to a final status.
pub async fn update_status(
    hodi: &Hodi,
    session: &Session,
    cmd: UpdatePaymentStatusSimulatorCommand,
) -> anyhow::Result<SimulatorToServerCommandReply> {
    let found = match hodi.store.transaction(&cmd.transaction_id).await? {
        Some(t) => Some(t),
        None => hodi.store.transaction_by_provider_id(&session.org_id, &cmd.transaction_id).await?,
    };
    let Some(t) = found.filter(|t| t.org_id == session.org_id) else {
        return Ok(reply(false, format!("no transaction {:?} in this org", cmd.transaction_id)));
    };
    let status = PaymentStatus::try_from(cmd.status).unwrap_or(PaymentStatus::Unspecified);
    if status != PaymentStatus::Success && !is_failure(status) {
        return Ok(reply(false, "status must be final: success or a failure (failed, rejected, expired, …)"));
    }
    Ok(match finish(hodi, &t.id, status).await? {
        Some(s) if s == status as i32 => reply(true, format!("{} is now {:?}", t.id, status)),
        Some(s) => reply(
            false,
            format!("{} could not settle and is now {:?}", t.id, PaymentStatus::try_from(s).unwrap_or_default()),
        ),
        None => reply(false, format!("{} is no longer pending", t.id)),
    })
}

/// Expires checkouts the customer never answered (`payment.checkout_expiry_secs`), until `shutdown`.
pub async fn sweep_checkouts(hodi: std::sync::Arc<Hodi>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(hodi.config.payment.checkout_sweep_ms.max(10))) => {}
        }
        let expiry = crate::store::secs_to_ms(hodi.config.payment.checkout_expiry_secs);
        let before = now_ms().saturating_sub(expiry);
        let stale = match hodi.store.stale_checkouts(before, PaymentStatus::PendingConfirmation as i32, 500).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading stale checkouts");
                continue;
            }
        };
        for id in stale {
            match finish(&hodi, &id, PaymentStatus::Expired).await {
                Ok(Some(_)) => tracing::info!(transaction_id = %id, "checkout expired unanswered"),
                Ok(None) => {}
                Err(e) => tracing::warn!(transaction_id = %id, error = %e, "expiring a checkout"),
            }
        }
    }
}
