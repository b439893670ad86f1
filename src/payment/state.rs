//! The payment part of GetCustomerState: the transaction log, pending transactions, and wallets
//! with their balances and what is held on them.

use std::collections::BTreeMap;

use prost::Message;

use super::{is_pending, to_cash};
use crate::convert::timestamp;
use crate::store::customer_state::{Hold, StateTransaction};
use crate::store::payments::Account;
use crate::wire::{
    payment_counter_party, PaymentBalance, PaymentCounterParty, PaymentState, PaymentTransaction,
    PendingPaymentTransaction,
};

fn wire(t: &StateTransaction) -> PaymentTransaction {
    PaymentTransaction {
        transaction_id: t.id.clone(),
        app_id: t.app_id.clone(),
        debit_party: PaymentCounterParty::decode(t.debit_party.as_slice()).ok(),
        credit_party: PaymentCounterParty::decode(t.credit_party.as_slice()).ok(),
        value: Some(to_cash(&t.currency, t.amount)),
        status: t.status,
        created_at: Some(timestamp(t.created_at)),
        updated_at: Some(timestamp(t.updated_at)),
        provider_transaction_id: t.provider_transaction_id.clone(),
        narration: (!t.narration.is_empty()).then(|| t.narration.clone()),
    }
}

/// The payment state from the customer's latest transactions, wallets and the holds on them.
pub fn state(transactions: &[StateTransaction], wallets: &[Account], holds: &[Hold]) -> PaymentState {
    let mut customer_numbers = Vec::new();
    let mut channel_numbers = Vec::new();
    for t in transactions {
        for party in [&t.debit_party, &t.credit_party] {
            if let Some(payment_counter_party::Party::Customer(c)) =
                PaymentCounterParty::decode(party.as_slice()).ok().and_then(|p| p.party)
            {
                if let Some(n) = c.customer_number.filter(|n| !customer_numbers.contains(n)) {
                    customer_numbers.push(n);
                }
                if let Some(ch) = c.channel_number.filter(|ch| !channel_numbers.contains(ch)) {
                    channel_numbers.push(ch);
                }
            }
        }
    }
    let mut balances = BTreeMap::new();
    for w in wallets {
        let pending = holds
            .iter()
            .filter(|h| h.account_id == w.id)
            .map(|h| {
                let value = Some(to_cash(&w.currency, h.amount));
                (
                    h.transaction_id.clone(),
                    PendingPaymentTransaction {
                        created_at: Some(timestamp(h.created_at)),
                        value: value.clone(),
                        converted: value,
                    },
                )
            })
            .collect();
        balances.insert(
            w.wallet_id.clone(),
            PaymentBalance {
                currency_code: w.currency.clone(),
                available: Some(to_cash(&w.currency, w.available())),
                actual: Some(to_cash(&w.currency, w.balance)),
                pending,
                sequence_nr: w.sequence_nr,
            },
        );
    }
    let (pending, done): (Vec<&StateTransaction>, Vec<&StateTransaction>) =
        transactions.iter().partition(|t| is_pending(t.status));
    PaymentState {
        customer_numbers,
        channel_numbers,
        transaction_log: done.into_iter().map(wire).collect(),
        pending_transactions: pending.into_iter().map(wire).collect(),
        wallets: balances.into_iter().collect(),
    }
}
