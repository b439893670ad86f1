//! Identity commands: UpdateCustomerTag, DeleteCustomerTag, UpdateCustomerSecondaryId,
//! DeleteCustomerSecondaryId, UpdateCustomerMetadata, DeleteCustomerMetadata.
//!
//! All reply with `UpdateCustomerStateReply`; the rules of a change are [`crate::customer::identity`]'s
//! (an expiry already in the past, for one, is refused rather than silently stored invisible).

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::{internal, refusal};
use crate::context::Hodi;
pub use crate::customer::identity::Change;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::UpdateCustomerStateReply;

pub fn reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerState(UpdateCustomerStateReply { status, description: description.into(), customer_id })
}

#[derive(Debug)]
pub struct IdentityCommand {
    customer: CustomerRef,
    change: Change,
}

impl IdentityCommand {
    pub fn new(customer: CustomerRef, change: Change) -> Self {
        IdentityCommand { customer, change }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let store = &hodi.store;
        let customer = match self.customer.resolve_live(store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let id = Some(customer.id.clone());
        Ok(match crate::customer::identity::apply(hodi, &session.org_id, &customer.id, self.change).await {
            Ok(Ok(done)) => reply(true, done, id),
            Ok(Err(why)) => reply(false, why, id),
            Err(e) => reply(false, refusal(e)?, id),
        })
    }
}
