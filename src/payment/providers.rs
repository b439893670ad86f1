//! Payments through real providers (M-Pesa, Africa's Talking airtime): which payments go to a
//! provider, and what its reports do to them.
//!
//! A payment whose customer side is a payment channel number bound to a provider
//! (`hodi provision channel --channel cellular --number 174379 --provider mpesa`) is not offered
//! to simulator sockets: its request is queued for the provider in the same transaction that
//! stores it ([`Route::request`]), and the provider's worker ([`crate::channel::payments`]) makes
//! it. The ledger moves only on the provider's confirmed result: a checkout settles on success, a
//! payout's hold is taken on success and released on anything else. A customer paying the short
//! code on their own (M-Pesa C2B) lands in the org's purse like a simulator's ReceivePayment.
//!
//! Owns the rules; the HTTP side is [`crate::webhooks`], the protocol [`crate::channel`].

use std::sync::Arc;

use tracing::{error, info, warn};

use super::initiate::Party;
use super::simulator::{finish, Recorded};
use crate::channel::events::PaymentReceiver;
use crate::config::providers::Provider;
use crate::context::Hodi;
use crate::store::now_ms;
use crate::store::payment_requests::{PaymentRequest, RequestKind};
use crate::store::payments::Transaction;
use crate::wire::PaymentStatus;

/// Where a payment goes when a provider carries it.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub provider: String,
    pub request: PaymentRequest,
}

/// The provider carrying a checkout (`debit` a customer) or payout (`credit` a customer or a
/// channel), if its channel number is bound to one; Err with the status and reason when that
/// provider cannot carry this payment.
pub(crate) fn route(
    hodi: &Hodi,
    t: &Transaction,
    debit: &Party,
    credit: &Party,
) -> Result<Option<Route>, (PaymentStatus, String)> {
    // The binding was read with the party ([`super::initiate::resolve`]).
    let (kind, provider, number, destination, account) = match (debit, credit) {
        (Party::Customer { number, channel, provider, .. }, _) => {
            (RequestKind::Collect, provider, channel.number.clone(), number.number.clone(), String::new())
        }
        (_, Party::Customer { number, channel, provider, .. }) => {
            (RequestKind::Pay, provider, channel.number.clone(), number.number.clone(), String::new())
        }
        (_, Party::Channel { party: ch, provider }) => (
            RequestKind::Pay,
            provider,
            ch.source.clone(),
            ch.destination.clone(),
            ch.account.clone().unwrap_or_default(),
        ),
        _ => return Ok(None),
    };
    let Some(provider) = provider.clone() else { return Ok(None) };
    let (currency, amount) = (t.currency.as_str(), t.amount);
    let settings = hodi.config.providers.get(&provider);
    match (settings, kind) {
        (Some(Provider::Mpesa(_)), _) => {
            if let Err(why) = crate::channel::mpesa::whole_shillings(currency, amount) {
                return Err((PaymentStatus::InvalidRequest, why));
            }
        }
        (Some(Provider::AfricasTalking(_)), RequestKind::Collect) => {
            return Err((
                PaymentStatus::NotSupported,
                format!("provider {provider} (Africa's Talking airtime) only pays out; it cannot collect"),
            ));
        }
        _ => {}
    }
    let expire_secs =
        settings.map_or(crate::config::providers::Limits::default().expire_secs, |p| p.limits().expire_secs);
    let request = PaymentRequest {
        transaction_id: t.id.clone(),
        provider: provider.clone(),
        kind,
        channel_number: number,
        destination,
        account,
        currency: currency.to_string(),
        amount,
        narration: t.narration.clone(),
        attempts: 0,
        expires_at: now_ms() + (expire_secs as i64).saturating_mul(1000),
    };
    Ok(Some(Route { provider, request }))
}

/// Ends the payments whose requests providers refused (or that expired before a provider took
/// them), until the providers are gone (shutdown).
pub async fn run(hodi: Arc<Hodi>, mut refusals: PaymentReceiver) {
    while let Some(r) = refusals.recv().await {
        let status = if r.expired { PaymentStatus::Expired } else { PaymentStatus::Failed };
        info!(provider = r.provider, transaction_id = r.transaction_id, reason = r.reason, ?status, "payment not made");
        if let Err(e) = finish(&hodi, &r.transaction_id, status).await {
            warn!(transaction_id = r.transaction_id, error = %e, "ending a refused payment");
        }
    }
}

/// How long a result for a reference not stored yet waits for it, looking every `RESULT_LOOK`.
const RESULT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const RESULT_LOOK: std::time::Duration = std::time::Duration::from_millis(50);

/// What a result callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The transaction ended with this status.
    Finished(PaymentStatus),
    /// It had ended already (a provider sending its result again): nothing changed.
    AlreadyEnded,
    /// No transaction of this provider has that reference.
    Unknown,
}

/// A provider's result for the transaction it calls `reference` (or that we call `ours`, when
/// the callback carries our id): success settles it, anything else releases it.
pub async fn result(
    hodi: &Hodi,
    provider: &str,
    reference: &str,
    ours: Option<&str>,
    status: PaymentStatus,
    description: &str,
) -> anyhow::Result<Applied> {
    // A provider can call back before its worker has stored the reference it just answered with
    // (milliseconds apart), and Daraja does not send a result twice: an unknown reference is
    // looked for again for a short while before it is called unknown.
    let deadline = tokio::time::Instant::now() + RESULT_WAIT;
    let t = loop {
        let by_ours = match ours {
            Some(id) => hodi.store.transaction(id).await?.filter(|t| t.provider.as_deref() == Some(provider)),
            None => None,
        };
        let found = match by_ours {
            Some(t) => Some(t),
            None => hodi.store.transaction_by_provider_ref(provider, reference).await?,
        };
        match found {
            Some(t) => break t,
            None if tokio::time::Instant::now() < deadline => tokio::time::sleep(RESULT_LOOK).await,
            None => return Ok(Applied::Unknown),
        }
    };
    match finish(hodi, &t.id, status).await? {
        Some(s) => {
            let status = PaymentStatus::try_from(s).unwrap_or(status);
            info!(provider, transaction_id = t.id, reference, ?status, description, "payment result");
            Ok(Applied::Finished(status))
        }
        None => {
            if status == PaymentStatus::Success && t.status != PaymentStatus::Success as i32 {
                // The provider moved money for a payment Hodi had already ended (a checkout
                // expired here before the customer paid): the ledger does not show it.
                error!(
                    provider,
                    transaction_id = t.id,
                    reference,
                    description,
                    ended_as = t.status,
                    "a provider reports success for a payment that had already ended; reconcile it by hand"
                );
            }
            Ok(Applied::AlreadyEnded)
        }
    }
}

/// Whether a customer may pay `short_code` through `provider` (M-Pesa C2B validation): an org
/// has it bound, and a purse in `currency` to receive into.
pub async fn may_receive(
    hodi: &Hodi,
    provider: &str,
    short_code: &str,
    currency: &str,
) -> anyhow::Result<Result<(), String>> {
    let Some((org_id, _)) = hodi.store.provider_number_owner(provider, "cellular", short_code).await? else {
        return Ok(Err(format!("short code {short_code} is not bound to provider {provider}")));
    };
    Ok(match hodi.store.org_purse(&org_id, currency).await? {
        Some(_) => Ok(()),
        None => Err(format!("the org has no purse in {currency}")),
    })
}

/// A customer paid `short_code` on their own (M-Pesa C2B confirmation): the money lands in the
/// org's purse and the app hears `received_payment`, once per provider transaction id.
pub async fn received(
    hodi: &Hodi,
    provider: &str,
    short_code: &str,
    customer_number: &str,
    provider_transaction_id: &str,
    currency: &str,
    amount: i64,
) -> anyhow::Result<Recorded> {
    let Some((org_id, app_id)) = hodi.store.provider_number_owner(provider, "cellular", short_code).await? else {
        return Ok(Recorded::Refused(format!("short code {short_code} is not bound to provider {provider}")));
    };
    let channel = crate::wire::PaymentChannelNumber {
        channel: crate::wire::PaymentChannel::Cellular as i32,
        number: short_code.to_string(),
    };
    let payment = super::simulator::Received {
        org_id: &org_id,
        app_id: &app_id,
        channel,
        customer_number,
        provider_transaction_id,
        currency,
        amount,
        status: PaymentStatus::Success,
        provider: Some(provider),
    };
    super::simulator::record_received(hodi, payment).await
}
