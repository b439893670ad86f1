//! What a customer number may be, by provider: cellular numbers are E.164 (checked against the
//! numbering plans of the `phonenumber` crate), email addresses look like one, and every number
//! is bounded in length and free of control characters, since it becomes a key in the store and
//! appears in every notification about the customer.
//!
//! Owns the rules only; commands and inbound messages call [`check`] before storing a number.

use crate::wire::CustomerNumberProvider;

/// Longest number of any provider, in bytes (an email address is at most 254).
pub const MAX_LEN: usize = 256;

/// Why `number` cannot be a customer number of `provider`, worded for a reply's description.
pub fn check(provider: i32, number: &str) -> Result<(), String> {
    if number.trim().is_empty() {
        return Err("customer number is empty".into());
    }
    if number.len() > MAX_LEN {
        return Err(format!("customer number is {} bytes long; the limit is {MAX_LEN}", number.len()));
    }
    if number.chars().any(char::is_control) {
        return Err("customer number contains control characters".into());
    }
    match CustomerNumberProvider::try_from(provider) {
        Ok(CustomerNumberProvider::Cellular) => cellular(number),
        Ok(CustomerNumberProvider::Email) => {
            let (local, domain) = number.split_once('@').unwrap_or_default();
            if local.is_empty() || !domain.contains('.') || number.chars().any(char::is_whitespace) {
                return Err(format!("customer number {number:?} is not an email address"));
            }
            Ok(())
        }
        Ok(CustomerNumberProvider::Unspecified) | Err(_) => {
            Err(format!("customer number provider {provider} is not one of facebook, cellular, telegram, app, email"))
        }
        Ok(_) if number.chars().any(char::is_whitespace) => Err(format!("customer number {number:?} contains spaces")),
        Ok(_) => Ok(()),
    }
}

fn cellular(number: &str) -> Result<(), String> {
    let e164 = number.starts_with('+') && number.len() <= 16 && number[1..].chars().all(|c| c.is_ascii_digit());
    if !e164 {
        return Err(format!(
            "cellular number {number:?} is not in E.164 form: + and the country code, then up to 15 digits"
        ));
    }
    match phonenumber::parse(None, number) {
        Ok(parsed) if phonenumber::is_valid(&parsed) => Ok(()),
        _ => Err(format!("cellular number {number:?} is not a valid number in its country's numbering plan")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELLULAR: i32 = CustomerNumberProvider::Cellular as i32;

    #[test]
    fn cellular_numbers_are_e164_and_valid() {
        for good in ["+254711082000", "+254700000001", "+14155552671", "+447911123456"] {
            assert_eq!(check(CELLULAR, good), Ok(()), "{good}");
        }
        for bad in ["254711082000", "+2547110820001234567", "+25471108200a", "+1", "+999123456", "+2547"] {
            assert!(check(CELLULAR, bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_number_is_bounded_and_printable() {
        let app = CustomerNumberProvider::App as i32;
        assert!(check(app, &"x".repeat(10_000)).unwrap_err().contains("limit is 256"));
        assert!(check(app, "a\0b").unwrap_err().contains("control"));
        assert!(check(app, "a b").is_err());
        assert_eq!(check(app, "user-42"), Ok(()));
        let email = CustomerNumberProvider::Email as i32;
        assert_eq!(check(email, "ann@example.com"), Ok(()));
        assert!(check(email, "ann").is_err());
        assert!(check(0, "x").unwrap_err().contains("provider"));
    }
}
