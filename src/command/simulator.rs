//! Simulator-socket commands (the customer's side): ReceiveMessage, ReceivePayment,
//! UpdatePaymentStatus.
//!
//! This version authenticates simulator sockets and parses their commands; carrying them out comes
//! with the messaging and payment work. Until then each is answered `status: false` saying so.

use hodi_rsocket::RemoteError;

use crate::server::Hodi;
use crate::session::Session;
use crate::wire::simulator_to_server_command::Entry;
use crate::wire::{SimulatorToServerCommand, SimulatorToServerCommandReply};

#[derive(Debug)]
pub enum SimulatorCommand {
    ReceiveMessage,
    ReceivePayment,
    UpdatePaymentStatus,
}

impl SimulatorCommand {
    pub fn from_proto(command: SimulatorToServerCommand) -> Result<Self, RemoteError> {
        match command.entry {
            None => Err(RemoteError::invalid(
                "empty or unknown command: the SimulatorToServerCommand sets no command this server knows",
            )),
            Some(Entry::ReceiveMessage(_)) => Ok(SimulatorCommand::ReceiveMessage),
            Some(Entry::ReceivePayment(_)) => Ok(SimulatorCommand::ReceivePayment),
            Some(Entry::UpdatePaymentStatus(_)) => Ok(SimulatorCommand::UpdatePaymentStatus),
        }
    }

    pub async fn apply(self, _hodi: &Hodi, session: &Session) -> Result<SimulatorToServerCommandReply, RemoteError> {
        if !session.simulator {
            return Err(RemoteError::rejected("app sockets may not send simulator commands"));
        }
        let name = match self {
            SimulatorCommand::ReceiveMessage => "ReceiveMessage",
            SimulatorCommand::ReceivePayment => "ReceivePayment",
            SimulatorCommand::UpdatePaymentStatus => "UpdatePaymentStatus",
        };
        Ok(SimulatorToServerCommandReply {
            status: false,
            description: format!("{name} is not available in this version of Hodi"),
            message: None,
        })
    }
}
