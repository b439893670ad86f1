//! The payment part of GetCustomerState: the transaction log, pending transactions, and wallets
//! with their balances and what is held on them.

use std::collections::BTreeMap;

use prost::Message;

use super::{is_pending, to_cash};
use crate::context::Hodi;
use crate::convert::timestamp;
use crate::store::payments::Transaction;
use crate::wire::{
    payment_counter_party, PaymentBalance, PaymentCounterParty, PaymentState, PaymentTransaction,
    PendingPaymentTransaction,
};

/// Transactions shown per customer (the latest).
const LOG: i64 = 100;

fn wire(t: &Transaction) -> PaymentTransaction {
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

pub async fn state(hodi: &Hodi, customer_id: &str) -> anyhow::Result<PaymentState> {
    let transactions = hodi.store.transactions_for(customer_id, LOG).await?;
    let mut customer_numbers = Vec::new();
    let mut channel_numbers = Vec::new();
    for t in &transactions {
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
    let mut wallets = BTreeMap::new();
    for w in hodi.store.wallets_of(customer_id).await? {
        let pending = hodi
            .store
            .holds_of(&w.id)
            .await?
            .into_iter()
            .map(|(id, amount, at)| {
                let value = Some(to_cash(&w.currency, amount));
                (
                    id,
                    PendingPaymentTransaction {
                        created_at: Some(timestamp(at)),
                        value: value.clone(),
                        converted: value,
                    },
                )
            })
            .collect();
        wallets.insert(
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
    let (pending, done): (Vec<&Transaction>, Vec<&Transaction>) =
        transactions.iter().partition(|t| is_pending(t.status));
    Ok(PaymentState {
        customer_numbers,
        channel_numbers,
        transaction_log: done.into_iter().map(wire).collect(),
        pending_transactions: pending.into_iter().map(wire).collect(),
        wallets: wallets.into_iter().collect(),
    })
}
