//! Commands of the schema that this version does not carry out yet.
//!
//! Each is answered with the reply type the SDK reads for it, a failure status and a description
//! naming the command, so an app gets a clear answer instead of a hang. The list shrinks as the
//! payment work lands.

use crate::wire::app_to_server_command::Entry as Command;
use crate::wire::app_to_server_command_reply::Entry as Reply;
use crate::wire::{InitiatePaymentReply, PaymentStatus, ReplayPaymentReply};

/// Which reply message the SDK expects for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    InitiatePayment,
    ReplayPayment,
}

#[derive(Debug)]
pub struct NotAvailable {
    name: &'static str,
    kind: ReplyKind,
}

impl NotAvailable {
    /// The command's name and the reply type the SDK reads for it. `None` for commands this
    /// version carries out (they never get here).
    pub fn from_entry(entry: &Command) -> Option<Self> {
        use ReplyKind::*;
        let (name, kind) = match entry {
            Command::InitiatePayment(_) => ("InitiatePayment", InitiatePayment),
            Command::ReplayPayment(_) => ("ReplayPayment", ReplayPayment),
            Command::ReplayPaymentStatusUpdate(_) => ("ReplayPaymentStatusUpdate", ReplayPayment),
            _ => return None,
        };
        Some(NotAvailable { name, kind })
    }

    pub fn reply(&self) -> Reply {
        let description = format!("{} is not available in this version of Hodi", self.name);
        match self.kind {
            ReplyKind::InitiatePayment => Reply::InitiatePayment(InitiatePaymentReply {
                status: PaymentStatus::ApplicationError as i32,
                description,
                ..Default::default()
            }),
            ReplyKind::ReplayPayment => {
                Reply::ReplayPayment(ReplayPaymentReply { status: false, description, ..Default::default() })
            }
        }
    }
}
