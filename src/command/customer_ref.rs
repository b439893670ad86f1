//! How commands name a customer: by id, by customer number, or by secondary id.

use crate::store::customers::CustomerRecord;
use crate::store::Store;
use crate::wire::{CustomerNumber, IndexMapping};

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
    /// Elarian; an unknown id or secondary id is refused. Decommissioned customers resolve (with
    /// their flag set); see [`CustomerRef::resolve_live`].
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
            CustomerRef::Number(number) => match crate::convert::stored_number(number) {
                Err(refusal) => Ok(Err(refusal)),
                Ok(stored) => Ok(Ok(store.customer_by_number(org_id, &stored).await?.0)),
            },
            CustomerRef::SecondaryId(mapping) => {
                let value = mapping.value.as_deref().unwrap_or("");
                match store.customer_by_secondary_id(org_id, &mapping.key, value).await? {
                    Some(id) => Ok(store
                        .customer(org_id, &id)
                        .await?
                        .ok_or_else(|| format!("secondary id {:?}={value:?} names a missing customer", mapping.key))),
                    None => Ok(Err(format!("no customer has secondary id {:?}={value:?}", mapping.key))),
                }
            }
        }
    }

    /// Like [`CustomerRef::resolve`], refusing a decommissioned (adopted) customer.
    pub async fn resolve_live(&self, store: &Store, org_id: &str) -> anyhow::Result<Result<CustomerRecord, Refusal>> {
        Ok(match self.resolve(store, org_id).await? {
            Ok(c) if c.decommissioned => {
                Err(format!("customer {} is decommissioned (adopted by another customer)", c.id))
            }
            other => other,
        })
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

customer_ref_from!(
    get_customer_state_command,
    add_customer_reminder_command,
    cancel_customer_reminder_command,
    update_customer_tag_command,
    delete_customer_tag_command,
    update_customer_secondary_id_command,
    delete_customer_secondary_id_command,
    update_customer_metadata_command,
    delete_customer_metadata_command,
    lease_customer_app_data_command,
    update_customer_app_data_command,
    delete_customer_app_data_command,
);

impl From<Option<crate::wire::adopt_customer_state_command::OtherCustomer>> for CustomerRef {
    fn from(c: Option<crate::wire::adopt_customer_state_command::OtherCustomer>) -> Self {
        use crate::wire::adopt_customer_state_command::OtherCustomer;
        match c {
            Some(OtherCustomer::OtherCustomerId(id)) => CustomerRef::Id(id),
            Some(OtherCustomer::OtherCustomerNumber(n)) => CustomerRef::Number(n),
            Some(OtherCustomer::OtherSecondaryId(s)) => CustomerRef::SecondaryId(s),
            None => CustomerRef::Missing,
        }
    }
}
