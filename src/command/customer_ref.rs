//! How commands name a customer: by id, by customer number, or by secondary id.

use crate::store::customers::{CustomerRecord, StoredNumber};
use crate::store::Store;
use crate::wire::{CustomerNumber, CustomerNumberProvider, IndexMapping};

/// A customer as a command names it.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerRef {
    Id(String),
    Number(CustomerNumber),
    SecondaryId(IndexMapping),
    Missing,
}

/// Why a customer reference did not resolve, worded for the reply's `description`.
pub type Refusal = String;

impl CustomerRef {
    /// Resolves within `org_id`. A customer number never seen before creates the customer, as in
    /// Elarian; an unknown id or secondary id is refused.
    pub async fn resolve(&self, store: &Store, org_id: &str) -> anyhow::Result<Result<CustomerRecord, Refusal>> {
        match self {
            CustomerRef::Missing => {
                Ok(Err("no customer given: set customer_id, customer_number or secondary_id".into()))
            }
            CustomerRef::Id(id) if id.is_empty() => Ok(Err("customer_id is empty".into())),
            CustomerRef::Id(id) => Ok(match store.customer(org_id, id).await? {
                Some(c) => Ok(c),
                None => Err(format!("unknown customer id {id:?}")),
            }),
            CustomerRef::Number(number) => match stored_number(number) {
                Err(refusal) => Ok(Err(refusal)),
                Ok(stored) => Ok(Ok(store.customer_by_number(org_id, &stored).await?.0)),
            },
            CustomerRef::SecondaryId(mapping) => Ok(Err(format!(
                "no customer has secondary id {:?}={:?}",
                mapping.key,
                mapping.value.as_deref().unwrap_or("")
            ))),
        }
    }
}

/// Validates a wire customer number into its stored form.
pub fn stored_number(number: &CustomerNumber) -> Result<StoredNumber, Refusal> {
    if number.number.trim().is_empty() {
        return Err("customer number is empty".into());
    }
    match CustomerNumberProvider::try_from(number.provider) {
        Ok(CustomerNumberProvider::Unspecified) | Err(_) => {
            return Err(format!(
                "customer number provider {} is not one of facebook, cellular, telegram, app, email",
                number.provider
            ))
        }
        Ok(_) => {}
    }
    Ok(StoredNumber {
        provider: number.provider,
        number: number.number.clone(),
        partition: number.partition.clone().unwrap_or_default(),
    })
}

/// The wire form of a stored number.
pub fn wire_number(n: &StoredNumber) -> CustomerNumber {
    CustomerNumber {
        provider: n.provider,
        number: n.number.clone(),
        partition: (!n.partition.is_empty()).then(|| n.partition.clone()),
    }
}

macro_rules! customer_ref_from {
    ($($module:ident),* $(,)?) => {
        $(
            impl From<Option<crate::wire::$module::Customer>> for CustomerRef {
                fn from(c: Option<crate::wire::$module::Customer>) -> Self {
                    use crate::wire::$module::Customer;
                    match c {
                        Some(Customer::CustomerId(id)) => CustomerRef::Id(id),
                        Some(Customer::CustomerNumber(n)) => CustomerRef::Number(n),
                        Some(Customer::SecondaryId(s)) => CustomerRef::SecondaryId(s),
                        None => CustomerRef::Missing,
                    }
                }
            }
        )*
    };
}

customer_ref_from!(get_customer_state_command, add_customer_reminder_command, cancel_customer_reminder_command);
