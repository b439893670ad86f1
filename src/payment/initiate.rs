//! InitiatePayment: resolves both counterparties, checks the pair, currency and funds, and starts
//! the transaction (see the pair table in [`crate::payment`]).

use std::sync::Arc;

use prost::Message;
use tracing::warn;

use super::{is_pending, to_cash, to_minor};
use crate::context::Hodi;
use crate::convert::{stored_number, wire_number};
use crate::store::customers::StoredNumber;
use crate::store::now_ms;
use crate::store::payments::{Account, AccountKey, Notice, Start, Started, Transaction};
use crate::wire::server_to_app_customer_notification::Entry as AppEntry;
use crate::wire::server_to_app_purse_notification::Entry as PurseEntry;
use crate::wire::server_to_simulator_notification::Entry as SimEntry;
use crate::wire::{
    checkout_payment_simulator_notification, payment_counter_party, send_channel_payment_simulator_notification,
    send_customer_payment_simulator_notification, CheckoutPaymentSimulatorNotification, InitiatePaymentCommand,
    PaymentChannel, PaymentChannelCounterParty, PaymentChannelNumber, PaymentCounterParty, PaymentPurseCounterParty,
    PaymentStatus, PaymentStatusNotification, PaymentWalletCounterParty, SendChannelPaymentSimulatorNotification,
    SendCustomerPaymentSimulatorNotification, ServerToAppCustomerNotification, ServerToAppPurseNotification,
    ServerToSimulatorNotification,
};

/// What InitiatePaymentReply reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Initiated {
    pub status: PaymentStatus,
    pub description: String,
    pub transaction_id: Option<String>,
    pub debit_customer_id: Option<String>,
    pub credit_customer_id: Option<String>,
}

impl Initiated {
    fn refused(status: PaymentStatus, description: impl Into<String>) -> Self {
        Initiated {
            status,
            description: description.into(),
            transaction_id: None,
            debit_customer_id: None,
            credit_customer_id: None,
        }
    }
}

/// A refusal: the status to report and why.
type Refusal = (PaymentStatus, String);

/// A counterparty, checked against the org.
#[derive(Debug, Clone)]
pub(crate) enum Party {
    /// `account`: the purse's ledger account, when it has one yet.
    Purse { id: String, currency: String, account: Option<String> },
    /// `accounts`: the wallet's ledger accounts (one per currency it was opened in; one in practice).
    Wallet { customer_id: String, wallet_id: String, accounts: Vec<Account> },
    /// `provider`: the real provider the payment channel number is bound to, if any.
    Customer { customer_id: String, number: StoredNumber, channel: PaymentChannelNumber, provider: Option<String> },
    /// `provider`: the real provider the source number is bound to, if any.
    Channel { party: PaymentChannelCounterParty, provider: Option<String> },
}

impl Party {
    pub(crate) fn customer_id(&self) -> Option<String> {
        match self {
            Party::Wallet { customer_id, .. } | Party::Customer { customer_id, .. } => Some(customer_id.clone()),
            _ => None,
        }
    }
    fn is_internal(&self) -> bool {
        matches!(self, Party::Purse { .. } | Party::Wallet { .. })
    }
}

/// The name a payment channel is provisioned under (`hodi provision channel --channel cellular`).
pub fn payment_channel_name(channel: i32) -> Option<&'static str> {
    match PaymentChannel::try_from(channel).ok()? {
        PaymentChannel::Cellular => Some("cellular"),
        PaymentChannel::Airtime => Some("airtime"),
        PaymentChannel::Unspecified => None,
    }
}

/// A wallet party from what the store found for it (None: no such customer).
fn wallet_party(
    w: &PaymentWalletCounterParty,
    found: Option<(bool, Vec<crate::store::payments::Account>)>,
) -> Result<Party, Refusal> {
    match found {
        None => Err((PaymentStatus::InvalidWallet, format!("no customer {:?} in this org", w.customer_id))),
        Some((true, _)) => Err((
            PaymentStatus::DecommissionedCustomerId,
            format!("customer {} was adopted by another and is decommissioned", w.customer_id),
        )),
        Some((false, accounts)) => {
            Ok(Party::Wallet { customer_id: w.customer_id.clone(), wallet_id: w.wallet_id.clone(), accounts })
        }
    }
}

/// Resolves both counterparties; wallet to wallet (the commonest transfer) in one query.
async fn resolve_both(
    hodi: &Hodi,
    org_id: &str,
    debit: Option<&PaymentCounterParty>,
    credit: Option<&PaymentCounterParty>,
) -> anyhow::Result<(Result<Party, Refusal>, Result<Party, Refusal>)> {
    use payment_counter_party::Party as P;
    if let (Some(P::Wallet(d)), Some(P::Wallet(c))) =
        (debit.and_then(|p| p.party.as_ref()), credit.and_then(|p| p.party.as_ref()))
    {
        if !d.wallet_id.trim().is_empty() && !c.wallet_id.trim().is_empty() {
            let [found_d, found_c] = hodi
                .store
                .wallet_accounts_pair(org_id, (&d.customer_id, &d.wallet_id), (&c.customer_id, &c.wallet_id))
                .await?;
            return Ok((wallet_party(d, found_d), wallet_party(c, found_c)));
        }
    }
    Ok((resolve(hodi, org_id, debit).await?, resolve(hodi, org_id, credit).await?))
}

/// Resolves a wire counterparty within `org_id`.
pub(crate) async fn resolve(
    hodi: &Hodi,
    org_id: &str,
    party: Option<&PaymentCounterParty>,
) -> anyhow::Result<Result<Party, Refusal>> {
    use payment_counter_party::Party as P;
    let Some(party) = party.and_then(|p| p.party.as_ref()) else {
        return Ok(Err((PaymentStatus::InvalidRequest, "both counterparties are required".into())));
    };
    let store = &hodi.store;
    Ok(match party {
        P::Purse(p) => match store.purse_account(org_id, &p.purse_id).await? {
            Some((currency, account)) => Ok(Party::Purse { id: p.purse_id.clone(), currency, account }),
            None => Err((PaymentStatus::InvalidPurse, format!("no purse {:?} in this org", p.purse_id))),
        },
        P::Wallet(w) => {
            if w.wallet_id.trim().is_empty() {
                return Ok(Err((PaymentStatus::InvalidWallet, "wallet_id is required".into())));
            }
            wallet_party(w, store.wallet_accounts(org_id, &w.customer_id, &w.wallet_id).await?)
        }
        P::Customer(c) => {
            let (Some(number), Some(channel)) = (&c.customer_number, &c.channel_number) else {
                return Ok(Err((
                    PaymentStatus::InvalidRequest,
                    "a customer needs a number and a channel number".into(),
                )));
            };
            let Some(name) = payment_channel_name(channel.channel) else {
                return Ok(Err((PaymentStatus::InvalidRequest, "channel_number has no payment channel".into())));
            };
            let Some(provider) = store.channel_binding(org_id, name, &channel.number).await? else {
                return Ok(Err((
                    PaymentStatus::InvalidRequest,
                    format!("{name} number {:?} is not provisioned for this org", channel.number),
                )));
            };
            let number = match stored_number(number) {
                Ok(n) => n,
                Err(e) => return Ok(Err((PaymentStatus::InvalidRequest, e.to_string()))),
            };
            let (customer, _) = store.customer_by_number(org_id, &number).await?;
            if customer.decommissioned {
                return Ok(Err((PaymentStatus::DecommissionedCustomerId, "the customer is decommissioned".into())));
            }
            Ok(Party::Customer { customer_id: customer.id, number, channel: channel.clone(), provider })
        }
        P::Channel(ch) => {
            let Some(name) = payment_channel_name(ch.channel) else {
                return Ok(Err((PaymentStatus::InvalidRequest, "channel is required".into())));
            };
            if ch.destination.trim().is_empty() {
                return Ok(Err((PaymentStatus::InvalidRequest, "a channel payment needs a destination".into())));
            }
            let Some(provider) = store.channel_binding(org_id, name, &ch.source).await? else {
                return Ok(Err((
                    PaymentStatus::InvalidRequest,
                    format!("{name} source {:?} is not provisioned for this org", ch.source),
                )));
            };
            Ok(Party::Channel { party: ch.clone(), provider })
        }
    })
}

/// The ledger account of an internal party in `currency`; a credited wallet is opened on first use.
async fn internal_account(
    hodi: &Hodi,
    org_id: &str,
    party: &Party,
    currency: &str,
    credit: bool,
) -> anyhow::Result<Result<String, Refusal>> {
    match party {
        Party::Purse { id, currency: own, account } => {
            if own != currency {
                return Ok(Err((
                    PaymentStatus::InvalidRequest,
                    format!("currency mismatch: purse {id} holds {own}, not {currency}"),
                )));
            }
            if let Some(account) = account {
                return Ok(Ok(account.clone()));
            }
            Ok(Ok(hodi.store.open_account(org_id, &AccountKey::Purse(id.clone()), currency).await?.id))
        }
        Party::Wallet { customer_id, wallet_id, accounts } => {
            let same: Vec<_> = accounts.iter().collect();
            if let Some(w) = same.iter().find(|w| w.currency == currency) {
                return Ok(Ok(w.id.clone()));
            }
            if let Some(other) = same.first() {
                return Ok(Err((
                    PaymentStatus::InvalidRequest,
                    format!("currency mismatch: wallet {wallet_id:?} holds {}, not {currency}", other.currency),
                )));
            }
            if !credit {
                return Ok(Err((
                    PaymentStatus::InvalidWallet,
                    format!("customer {customer_id} has no wallet {wallet_id:?}"),
                )));
            }
            let key = AccountKey::Wallet { customer_id: customer_id.clone(), wallet_id: wallet_id.clone() };
            Ok(Ok(hodi.store.open_account(org_id, &key, currency).await?.id))
        }
        _ => anyhow::bail!("not an internal party"),
    }
}

/// The outside world's side of a payment, by name.
pub(crate) fn external_key(party: &Party) -> AccountKey {
    AccountKey::External(match party {
        Party::Customer { number, .. } => format!("customer:{}", number.number),
        Party::Channel { party: ch, .. } => {
            format!("channel:{}:{}", payment_channel_name(ch.channel).unwrap_or("unknown"), ch.destination)
        }
        Party::Purse { id, .. } => format!("purse:{id}"),
        Party::Wallet { customer_id, wallet_id, .. } => format!("wallet:{customer_id}:{wallet_id}"),
    })
}

/// InitiatePayment.
pub async fn initiate(
    hodi: &Arc<Hodi>,
    org_id: &str,
    app_id: &str,
    cmd: InitiatePaymentCommand,
) -> anyhow::Result<Initiated> {
    let Some(value) = cmd.value.as_ref() else {
        return Ok(Initiated::refused(PaymentStatus::InvalidRequest, "value is required"));
    };
    let (currency, amount) = match to_minor(value) {
        Ok(v) => v,
        Err(e) => return Ok(Initiated::refused(PaymentStatus::InvalidRequest, e)),
    };
    let (debit, credit) = resolve_both(hodi, org_id, cmd.debit_party.as_ref(), cmd.credit_party.as_ref()).await?;
    let debit = match debit {
        Ok(p) => p,
        Err((s, d)) => return Ok(Initiated::refused(s, format!("debit party: {d}"))),
    };
    let credit = match credit {
        Ok(p) => p,
        Err((s, d)) => return Ok(Initiated::refused(s, format!("credit party: {d}"))),
    };
    let (start, kind) = match (&debit, &credit) {
        (d, c) if d.is_internal() && c.is_internal() => {
            (Start::SettleNow { settled: PaymentStatus::Success as i32 }, "transfer")
        }
        (Party::Customer { .. }, c) if c.is_internal() => {
            (Start::Await { pending: PaymentStatus::PendingConfirmation as i32 }, "checkout")
        }
        (d, Party::Customer { .. }) if d.is_internal() => (Start::Hold { pending: PaymentStatus::Queued as i32 }, "payout"),
        (d, Party::Channel { .. }) if d.is_internal() => (Start::Hold { pending: PaymentStatus::Queued as i32 }, "channel"),
        _ => {
            return Ok(Initiated::refused(
                PaymentStatus::NotSupported,
                "this pair of counterparties is not supported: money moves between purses and wallets, from a customer into \
                 one (checkout), or out of one to a customer or a channel",
            ))
        }
    };
    let debit_account = if debit.is_internal() {
        match internal_account(hodi, org_id, &debit, &currency, false).await? {
            Ok(a) => a,
            Err((s, d)) => return Ok(Initiated::refused(s, format!("debit party: {d}"))),
        }
    } else {
        hodi.store.open_account(org_id, &external_key(&debit), &currency).await?.id
    };
    let credit_account = if credit.is_internal() {
        match internal_account(hodi, org_id, &credit, &currency, true).await? {
            Ok(a) => a,
            Err((s, d)) => return Ok(Initiated::refused(s, format!("credit party: {d}"))),
        }
    } else {
        hodi.store.open_account(org_id, &external_key(&credit), &currency).await?.id
    };
    if debit_account == credit_account {
        return Ok(Initiated::refused(PaymentStatus::InvalidRequest, "debit and credit are the same account"));
    }
    let purse_id = match (&debit, &credit) {
        (Party::Purse { id, .. }, _) | (_, Party::Purse { id, .. }) => Some(id.clone()),
        _ => None,
    };
    let mut t = Transaction {
        debit_party: cmd.debit_party.clone().unwrap_or_default().encode_to_vec(),
        credit_party: cmd.credit_party.clone().unwrap_or_default().encode_to_vec(),
        debit_account: Some(debit_account),
        credit_account: Some(credit_account),
        debit_customer_id: debit.customer_id(),
        credit_customer_id: credit.customer_id(),
        purse_id,
        narration: cmd.narration.clone(),
        ..Transaction::draft(org_id, app_id, kind, &currency, amount, now_ms())
    };
    let id = t.id.clone();
    // A channel number bound to a real provider: the provider is asked, not the simulators.
    let route = match super::providers::route(hodi, &t, &debit, &credit) {
        Ok(route) => route,
        Err((s, d)) => return Ok(Initiated::refused(s, d)),
    };
    t.provider = route.as_ref().map(|r| r.provider.clone());
    let request = route.as_ref().map(|r| &r.request);
    let started =
        hodi.store.start_transaction(t.clone(), start, PaymentStatus::InsufficientFunds as i32, &[], request).await?;
    let (status, description) = match started {
        Started::Stored(s) => {
            let status = PaymentStatus::try_from(s).unwrap_or(PaymentStatus::Unspecified);
            let description = match (status, &route) {
                (PaymentStatus::Success, _) => "settled".to_string(),
                (PaymentStatus::PendingConfirmation, None) => "waiting for the customer to confirm".to_string(),
                (PaymentStatus::PendingConfirmation, Some(r)) => {
                    format!("waiting for the customer to confirm (asked through provider {})", r.provider)
                }
                (_, None) => "queued for the payment channel".to_string(),
                (_, Some(r)) => format!("queued for provider {}", r.provider),
            };
            (status, description)
        }
        Started::Insufficient => (
            PaymentStatus::InsufficientFunds,
            format!("the debit party has less than {} {currency} available", to_cash(&currency, amount).amount),
        ),
        Started::Duplicate(_) => (PaymentStatus::DuplicateRequest, "duplicate".to_string()),
    };
    if let (true, Some(r)) = (is_pending(status as i32), &route) {
        hodi.providers.wake_payments(&r.provider);
    } else if is_pending(status as i32) {
        let notification = simulator_notification(org_id, app_id, &id, &debit, &credit, &currency, amount);
        let hodi = hodi.clone();
        let id = id.clone();
        let checkout = kind == "checkout";
        tokio::spawn(async move {
            let acknowledged = crate::notify::offer_to_simulators(&hodi, &t.org_id, &notification).await;
            // A checkout waits for the customer's answer; a payout is done once handed over.
            let outcome = match (checkout, acknowledged) {
                (true, true) => return,
                (true, false) | (false, false) => PaymentStatus::Failed,
                (false, true) => PaymentStatus::Success,
            };
            if let Err(e) = super::simulator::finish(&hodi, &id, outcome).await {
                warn!(transaction_id = %id, error = %e, "finishing a payment");
            }
        });
    }
    Ok(Initiated {
        status,
        description,
        transaction_id: Some(id),
        debit_customer_id: debit.customer_id(),
        credit_customer_id: credit.customer_id(),
    })
}

/// A purse or wallet party as the simulator notifications' oneofs carry it: Ok(purse), Err(wallet).
fn purse_or_wallet(party: &Party) -> Result<PaymentPurseCounterParty, PaymentWalletCounterParty> {
    match party {
        Party::Wallet { customer_id, wallet_id, .. } => {
            Err(PaymentWalletCounterParty { customer_id: customer_id.clone(), wallet_id: wallet_id.clone() })
        }
        Party::Purse { id, .. } => Ok(PaymentPurseCounterParty { purse_id: id.clone() }),
        // Only purses and wallets reach here (the pair table); an empty purse names nothing.
        _ => Ok(PaymentPurseCounterParty::default()),
    }
}

fn simulator_notification(
    org_id: &str,
    app_id: &str,
    id: &str,
    debit: &Party,
    credit: &Party,
    currency: &str,
    amount: i64,
) -> ServerToSimulatorNotification {
    let value = Some(to_cash(currency, amount));
    let entry = match (debit, credit) {
        (Party::Customer { customer_id, number, channel, .. }, internal) => {
            SimEntry::CheckoutPayment(CheckoutPaymentSimulatorNotification {
                org_id: org_id.to_string(),
                customer_id: customer_id.clone(),
                app_id: app_id.to_string(),
                transaction_id: id.to_string(),
                customer_number: Some(wire_number(number)),
                channel_number: Some(channel.clone()),
                value,
                credit_party: Some(match purse_or_wallet(internal) {
                    Ok(p) => checkout_payment_simulator_notification::CreditParty::Purse(p),
                    Err(w) => checkout_payment_simulator_notification::CreditParty::Wallet(w),
                }),
            })
        }
        (internal, Party::Customer { customer_id, number, channel, .. }) => {
            SimEntry::SendCustomerPayment(SendCustomerPaymentSimulatorNotification {
                org_id: org_id.to_string(),
                customer_id: customer_id.clone(),
                app_id: app_id.to_string(),
                transaction_id: id.to_string(),
                customer_number: Some(wire_number(number)),
                channel_number: Some(channel.clone()),
                value,
                debit_party: Some(match purse_or_wallet(internal) {
                    Ok(p) => send_customer_payment_simulator_notification::DebitParty::Purse(p),
                    Err(w) => send_customer_payment_simulator_notification::DebitParty::Wallet(w),
                }),
            })
        }
        (internal, channel) => {
            let ch = match channel {
                Party::Channel { party, .. } => party.clone(),
                _ => PaymentChannelCounterParty::default(),
            };
            SimEntry::SendChannelPayment(SendChannelPaymentSimulatorNotification {
                org_id: org_id.to_string(),
                app_id: app_id.to_string(),
                transaction_id: id.to_string(),
                channel: ch.channel,
                source: ch.source,
                destination: ch.destination,
                account: ch.account,
                value,
                debit_party: Some(match purse_or_wallet(internal) {
                    Ok(p) => send_channel_payment_simulator_notification::DebitParty::Purse(p),
                    Err(w) => send_channel_payment_simulator_notification::DebitParty::Wallet(w),
                }),
            })
        }
    };
    ServerToSimulatorNotification { entry: Some(entry) }
}

/// The `payment_status` notification for a finished transaction: to the app for the customer
/// involved (the debit side's first), else to the purse.
pub(crate) fn status_notices(t: &Transaction, status: i32, app_id: &str) -> Vec<Notice> {
    let payment_status = PaymentStatusNotification { transaction_id: t.id.clone(), status };
    match (t.debit_customer_id.clone().or_else(|| t.credit_customer_id.clone()), &t.purse_id) {
        (Some(customer_id), _) => vec![Notice::Customer {
            app_id: app_id.to_string(),
            customer_id,
            entry: ServerToAppCustomerNotification {
                entry: Some(AppEntry::PaymentStatus(payment_status)),
                ..Default::default()
            }
            .encode_to_vec(),
        }],
        (None, Some(purse_id)) => vec![Notice::Purse {
            app_id: app_id.to_string(),
            purse_id: purse_id.clone(),
            entry: ServerToAppPurseNotification {
                entry: Some(PurseEntry::PaymentStatus(payment_status)),
                ..Default::default()
            }
            .encode_to_vec(),
        }],
        (None, None) => Vec::new(),
    }
}
