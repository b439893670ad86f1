//! Payments: InitiatePayment wallet-to-wallet throughput and latency on the embedded store (or
//! `--postgres`), with 1 and 8 app sockets sending one payment at a time, and 8 sockets with 16
//! in flight each as an app using the SDK's promises would (our RSocket client on loopback TCP).
//! Group commit shares a transaction among the payments waiting at once, so the in-flight count
//! is what lets it work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hodi::wire::*;
use hodi_rsocket::{Payload, Requester};
use prost::Message;

fn wallet(customer_id: &str, wallet_id: &str) -> PaymentCounterParty {
    PaymentCounterParty {
        party: Some(payment_counter_party::Party::Wallet(PaymentWalletCounterParty {
            customer_id: customer_id.into(),
            wallet_id: wallet_id.into(),
        })),
    }
}

async fn pay(app: &Requester, debit: PaymentCounterParty, credit: PaymentCounterParty) -> Result<i32> {
    let cmd = AppToServerCommand {
        entry: Some(app_to_server_command::Entry::InitiatePayment(InitiatePaymentCommand {
            debit_party: Some(debit),
            credit_party: Some(credit),
            value: Some(Cash { currency_code: "KES".into(), amount: 0.01 }),
            narration: String::new(),
        })),
    };
    let reply = AppToServerCommandReply::decode(app.request_response(Payload::new(cmd.encode_to_vec())).await?.data)?;
    match reply.entry {
        Some(app_to_server_command_reply::Entry::InitiatePayment(r)) => Ok(r.status),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
}

struct Row {
    group_commit: bool,
    sockets: usize,
    in_flight: usize,
    /// Process CPU (server and load client together) per payment.
    cpu_us: f64,
    payments: usize,
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn run(per_socket: usize, group_commit: bool) -> Result<Vec<Row>> {
    let server = super::BenchServer::start("payments", |c| c.database.group_commit = group_commit).await?;
    let (running, addr, dev) = (&server.running, server.addr.clone(), server.dev.clone());
    let meta = AppConnectionMetadata { simplex_mode: true, ..server.meta() };
    let echo: Arc<dyn hodi_rsocket::Responder> = Arc::new(hodi_rsocket::echo::Echo::default());
    // Fund 8 pairs of wallets: a customer pays into the purse, the purse tops each wallet up.
    let phone =
        super::messaging::connect(&addr, AppConnectionMetadata { simulator_mode: true, ..meta.clone() }, echo.clone())
            .await?;
    let fund = SimulatorToServerCommand {
        entry: Some(simulator_to_server_command::Entry::ReceivePayment(ReceivePaymentSimulatorCommand {
            transaction_id: "BENCH-FUND".into(),
            channel_number: Some(PaymentChannelNumber {
                channel: PaymentChannel::Cellular as i32,
                number: "525900".into(),
            }),
            customer_number: "+254700300000".into(),
            value: Some(Cash { currency_code: "KES".into(), amount: 1_000_000.0 }),
            status: PaymentStatus::Success as i32,
        })),
    };
    phone.request_response(Payload::new(fund.encode_to_vec())).await?;
    let setup = super::messaging::connect(&addr, meta.clone(), echo.clone()).await?;
    let mut pairs = Vec::new();
    for i in 0..8 {
        let n = hodi::store::customers::StoredNumber {
            provider: 2,
            number: format!("+25470030{i:04}"),
            partition: String::new(),
        };
        let (c, _) = running.hodi.store.customer_by_number(&dev.org_id, &n).await?;
        let purse = PaymentCounterParty {
            party: Some(payment_counter_party::Party::Purse(PaymentPurseCounterParty {
                purse_id: dev.purse_id.clone(),
            })),
        };
        for w in ["a", "b"] {
            let cmd = AppToServerCommand {
                entry: Some(app_to_server_command::Entry::InitiatePayment(InitiatePaymentCommand {
                    debit_party: Some(purse.clone()),
                    credit_party: Some(wallet(&c.id, w)),
                    value: Some(Cash { currency_code: "KES".into(), amount: 1000.0 }),
                    narration: String::new(),
                })),
            };
            setup.request_response(Payload::new(cmd.encode_to_vec())).await?;
        }
        pairs.push(c.id);
    }
    let mut rows = Vec::new();
    for (sockets, in_flight) in [(1usize, 1usize), (8, 1), (8, 16)] {
        let mut tasks = Vec::new();
        let mut apps = Vec::new();
        for _ in 0..sockets {
            apps.push(super::messaging::connect(&addr, meta.clone(), echo.clone()).await?);
        }
        let cpu = super::cpu_seconds();
        let started = Instant::now();
        for (customer, app) in pairs.clone().into_iter().zip(apps) {
            for lane in 0..in_flight {
                let (app, customer) = (app.clone(), customer.clone());
                let count = per_socket / in_flight;
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(count);
                    for k in 0..count {
                        let (d, c) = if (k + lane) % 2 == 0 { ("a", "b") } else { ("b", "a") };
                        let t = Instant::now();
                        let status = pay(&app, wallet(&customer, d), wallet(&customer, c)).await?;
                        anyhow::ensure!(status == PaymentStatus::Success as i32, "payment status {status}");
                        latencies.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    anyhow::Ok(latencies)
                }));
            }
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = super::cpu_seconds() - cpu;
        latencies.sort_by(|a, b| a.total_cmp(b));
        rows.push(Row {
            group_commit,
            sockets,
            in_flight,
            cpu_us: cpu * 1e6 / latencies.len().max(1) as f64,
            payments: latencies.len(),
            per_second: latencies.len() as f64 / seconds,
            p50_us: super::percentile(&latencies, 0.5),
            p99_us: super::percentile(&latencies, 0.99),
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (entries, balances, unbalanced) = running.hodi.store.ledger_check().await?;
    anyhow::ensure!((entries, balances, unbalanced) == (0, 0, 0), "ledger unbalanced after the run");
    server.stop();
    Ok(rows)
}

pub fn main(args: &[String]) -> Result<()> {
    let per_socket = super::arg(args, "--payments", 5000.0)? as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Both ways in one run, so that what group commit buys is measured on the same machine state.
    let mut rows = runtime.block_on(run(per_socket, false))?;
    rows.extend(runtime.block_on(run(per_socket, true))?);
    let mut table = String::from(
        "| group commit | app sockets | in flight each | payments | payments/s | CPU/payment | p50 | p99 |\n\
         | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        eprintln!(
            "group commit {}: {} sockets x {}: {} payments, {:.0}/s, {:.0} us CPU each, p50 {:.0} us, p99 {:.0} us",
            r.group_commit, r.sockets, r.in_flight, r.payments, r.per_second, r.cpu_us, r.p50_us, r.p99_us
        );
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} µs | {:.2} ms | {:.2} ms |\n",
            if r.group_commit { "on" } else { "off" },
            r.sockets,
            r.in_flight,
            r.payments,
            r.per_second,
            r.cpu_us,
            r.p50_us / 1000.0,
            r.p99_us / 1000.0
        ));
    }
    let (store, flag) = super::store_used();
    let section = format!(
        "## Payments (`hodi-bench payments`)\n\n\
         InitiatePayment wallet to wallet (0.01 KES, settled at once: the guarded debit, the credit, two entries and the\n\
         transaction row, group-committed with whatever other payments are waiting) on {store}, plain TCP on loopback;\n\
         each app socket pays between its own customer's two wallets, one payment at a time or 16 at once. CPU is the\n\
         bench process's (server and load client) per payment. The ledger is checked balanced after the run.\n\n\
         {table}\n\
         Measured by `cargo run --release -p hodi-bench -- payments{flag}`.\n",
    );
    super::write_section(&super::workspace_root().join("docs/benchmarks.md"), "## Payments", &section)
}
