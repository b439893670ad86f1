//! Payments: money, counterparties, and the rules of each pair. The ledger's bookkeeping (entries,
//! balances, holds) is [`crate::store::payments`]; the wire commands are parsed in
//! [`crate::command`].
//!
//! Pairs (debit → credit) and what happens:
//! - purse/wallet → purse/wallet: settled at once (`success`), or `insufficient_funds` and nothing moves;
//! - customer → purse/wallet: a checkout. `pending_confirmation`; the simulator sockets get
//!   `checkout_payment`; the customer's side confirms or declines with UpdatePaymentStatus
//!   (success settles; failed, rejected, expired… fail). No simulator to ask: `failed`.
//! - purse/wallet → customer, purse/wallet → channel: a payout. The amount is held at once (or
//!   `insufficient_funds`), the reply is `queued`, the simulator sockets get `send_customer_payment` /
//!   `send_channel_payment`; an acknowledgement settles it (`success`), none releases the hold (`failed`).
//! - anything else: `not_supported`.
//!
//! When the customer's or channel's payment number is bound to a real provider (M-Pesa, Africa's
//! Talking airtime), the provider is asked instead of the simulator sockets, and its result
//! callback confirms or fails the payment ([`providers`]).
//!
//! Every later change of status is a `payment_status` notification: to the app for the customer
//! involved, or as a purse notification when no customer is.

pub mod initiate;
pub mod providers;
pub mod simulator;
pub mod state;

use crate::wire::{Cash, PaymentStatus};

/// Digits after the decimal point of a currency's minor unit (ISO 4217, from `iso_currency`).
pub fn decimals(currency: &str) -> u32 {
    iso_currency::Currency::from_code(currency).and_then(|c| c.exponent()).map_or(2, u32::from)
}

/// The largest amount accepted, in minor units: far above any real payment, far below where an
/// f64 on the wire stops being exact to the minor unit.
const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// Converts a wire amount (a double) to exact minor units: the amount must be positive, finite,
/// and have no more decimals than its currency allows.
pub fn to_minor(cash: &Cash) -> Result<(String, i64), String> {
    let currency = cash.currency_code.trim().to_ascii_uppercase();
    // An active ISO 4217 code with a minor unit: not "ZZZ", nor gold (XAU) or test codes (XTS).
    let known = iso_currency::Currency::from_code(&currency).is_some_and(|c| c.exponent().is_some());
    if currency.len() != 3 || !known {
        return Err(format!("currency {:?} is not an ISO 4217 currency code", cash.currency_code));
    }
    if !cash.amount.is_finite() || cash.amount <= 0.0 {
        return Err(format!("amount must be a positive number, got {}", cash.amount));
    }
    let scale = 10f64.powi(decimals(&currency) as i32);
    let scaled = cash.amount * scale;
    let minor = scaled.round();
    if minor < 1.0 || minor > MAX_MINOR as f64 {
        return Err(format!("amount {} {currency} is out of range", cash.amount));
    }
    if (scaled - minor).abs() > 1e-6 * minor.max(1.0) {
        return Err(format!(
            "amount {} has more decimals than {currency} allows ({})",
            cash.amount,
            decimals(&currency)
        ));
    }
    Ok((currency, minor as i64))
}

/// Minor units back to a wire amount.
pub fn to_cash(currency: &str, minor: i64) -> Cash {
    let scale = 10f64.powi(decimals(currency) as i32);
    Cash { currency_code: currency.to_string(), amount: minor as f64 / scale }
}

/// Statuses a transaction can still leave.
pub const PENDING: [PaymentStatus; 4] = [
    PaymentStatus::Queued,
    PaymentStatus::PendingConfirmation,
    PaymentStatus::PendingValidation,
    PaymentStatus::Validated,
];

/// Whether a transaction can still leave `status`.
pub fn is_pending(status: i32) -> bool {
    PENDING.iter().any(|s| *s as i32 == status)
}

/// Statuses that end a transaction without moving money.
pub fn is_failure(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::InvalidRequest
            | PaymentStatus::NotSupported
            | PaymentStatus::InsufficientFunds
            | PaymentStatus::ApplicationError
            | PaymentStatus::NotAllowed
            | PaymentStatus::DuplicateRequest
            | PaymentStatus::InvalidPurse
            | PaymentStatus::InvalidWallet
            | PaymentStatus::DecommissionedCustomerId
            | PaymentStatus::Failed
            | PaymentStatus::Throttled
            | PaymentStatus::Expired
            | PaymentStatus::Rejected
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cash(c: &str, a: f64) -> Cash {
        Cash { currency_code: c.into(), amount: a }
    }

    #[test]
    fn wire_amounts_become_exact_minor_units_or_a_reason() {
        assert_eq!(to_minor(&cash("KES", 100.10)), Ok(("KES".into(), 10010)));
        assert_eq!(to_minor(&cash("kes", 0.29)), Ok(("KES".into(), 29)));
        assert_eq!(to_minor(&cash("UGX", 5000.0)), Ok(("UGX".into(), 5000)));
        assert_eq!(to_minor(&cash("KWD", 1.234)), Ok(("KWD".into(), 1234)));
        assert!(to_minor(&cash("KES", 1.005)).unwrap_err().contains("decimals"));
        assert!(to_minor(&cash("UGX", 10.5)).unwrap_err().contains("decimals"));
        assert!(to_minor(&cash("KES", 0.0)).is_err());
        assert!(to_minor(&cash("KES", -1.0)).is_err());
        assert!(to_minor(&cash("KES", f64::NAN)).is_err());
        assert!(to_minor(&cash("KES", f64::INFINITY)).is_err());
        assert!(to_minor(&cash("KES", 1e300)).is_err());
        assert!(to_minor(&cash("shillings", 1.0)).is_err());
        assert_eq!(to_cash("KES", 10010).amount, 100.10);
        assert_eq!(to_minor(&to_cash("KES", 123_456_789)).map(|m| m.1), Ok(123_456_789));
    }
}
