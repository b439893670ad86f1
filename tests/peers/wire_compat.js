// Wire compatibility with the official SDK's generated protobuf classes (npm elarian@0.2.25).
//
//   node wire_compat.js encode   -> prints {"name": "<base64>", ...} built with the SDK's classes
//   node wire_compat.js decode   <- reads {"name": {"type": "...", "base64": "..."}} on stdin and
//                                   prints {"name": <toObject() of the SDK's decoding>}
'use strict';

const app = require('elarian/lib/utils/service/app_socket_pb');
const sim = require('elarian/lib/utils/service/simulator_socket_pb');
const common = require('elarian/lib/utils/service/common_model_pb');
const appModel = require('elarian/lib/utils/service/app_model_pb');
const messaging = require('elarian/lib/utils/service/messaging_model_pb');
const payment = require('elarian/lib/utils/service/payment_model_pb');
const { StringValue } = require('google-protobuf/google/protobuf/wrappers_pb');
const { Timestamp } = require('google-protobuf/google/protobuf/timestamp_pb');
const { Duration } = require('google-protobuf/google/protobuf/duration_pb');

const sv = (v) => new StringValue().setValue(v);
const number = (n, partition) => {
    const c = new common.CustomerNumber().setNumber(n).setProvider(common.CustomerNumberProvider.CUSTOMER_NUMBER_PROVIDER_CELLULAR);
    return partition ? c.setPartition(sv(partition)) : c;
};
const b64 = (msg) => Buffer.from(msg.serializeBinary()).toString('base64');

function encode() {
    const out = {};
    out.setup = b64(new app.AppConnectionMetadata().setOrgId('org-1').setAppId('app-1').setApiKey(sv('key-1')).setSimplexMode(true));

    out.get_state = b64(new app.AppToServerCommand().setGetCustomerState(
        new app.GetCustomerStateCommand().setCustomerNumber(number('+254700000001', 'p1'))));

    out.add_reminder = b64(new app.AppToServerCommand().setAddCustomerReminder(
        new app.AddCustomerReminderCommand().setCustomerId('cst-9').setReminder(
            new appModel.CustomerReminder().setKey('rk').setRemindAt(new Timestamp().setSeconds(1700000000).setNanos(5))
                .setInterval(new Duration().setSeconds(60)).setPayload(sv('pl')))));

    out.update_tag = b64(new app.AppToServerCommand().setUpdateCustomerTag(
        new app.UpdateCustomerTagCommand().setCustomerId('cst-9').setUpdatesList([
            new common.CustomerIndex().setMapping(new common.IndexMapping().setKey('tier').setValue(sv('gold')))
                .setExpiresAt(new Timestamp().setSeconds(1800000000)),
        ])));

    const metaCmd = new app.UpdateCustomerMetadataCommand().setCustomerId('cst-9');
    metaCmd.getUpdatesMap().set('name', new common.DataMapValue().setStringVal('Ada'));
    metaCmd.getUpdatesMap().set('blob', new common.DataMapValue().setBytesVal(Buffer.from([1, 2, 3])));
    out.update_metadata = b64(new app.AppToServerCommand().setUpdateCustomerMetadata(metaCmd));

    out.send_ussd_menu = b64(new app.AppToServerCommand().setSendMessage(
        new app.SendMessageCommand().setCustomerNumber(number('+254700000002'))
            .setChannelNumber(new messaging.MessagingChannelNumber().setChannel(messaging.MessagingChannel.MESSAGING_CHANNEL_SMS).setNumber('21356'))
            .setMessage(new messaging.OutboundMessage().setBody(new messaging.OutboundMessageBody().setUssd(
                new messaging.UssdMenuMessageBody().setText('1. Pay\n2. Exit').setIsTerminal(false))))));

    out.initiate_payment = b64(new app.AppToServerCommand().setInitiatePayment(
        new app.InitiatePaymentCommand()
            .setDebitParty(new payment.PaymentCounterParty().setPurse(new payment.PaymentPurseCounterParty().setPurseId('prs-1')))
            .setCreditParty(new payment.PaymentCounterParty().setWallet(new payment.PaymentWalletCounterParty().setCustomerId('cst-9').setWalletId('w1')))
            .setValue(new common.Cash().setCurrencyCode('KES').setAmount(1234.56))
            .setNarration('n')));

    const activity = new app.CustomerActivityCommand().setCustomerNumber(number('+254700000003')).setSource('web').setSessionId('s1').setKey('login');
    activity.getPropertiesMap().set('ip', '127.0.0.1');
    out.customer_activity = b64(new app.AppToServerCommand().setCustomerActivity(activity));

    out.sim_receive = b64(new sim.SimulatorToServerCommand().setReceiveMessage(
        new sim.ReceiveMessageSimulatorCommand().setCustomerNumber('+254700000004')
            .setChannelNumber(new messaging.MessagingChannelNumber().setChannel(messaging.MessagingChannel.MESSAGING_CHANNEL_USSD).setNumber('*384#'))
            .setSessionId(sv('sess-1'))
            .setPartsList([new messaging.InboundMessageBody().setUssd(
                new messaging.UssdInputMessageBody().setStatus(messaging.UssdSessionStatus.USSD_SESSION_STATUS_ACTIVE).setText(sv('1')))])));
    return out;
}

const types = {
    AppToServerCommandReply: app.AppToServerCommandReply,
    ServerToAppNotification: app.ServerToAppNotification,
    ServerToSimulatorNotification: sim.ServerToSimulatorNotification,
    SimulatorToServerCommandReply: sim.SimulatorToServerCommandReply,
};

function decode(input) {
    const out = {};
    for (const [name, { type, base64 }] of Object.entries(input)) {
        const T = types[type];
        if (!T) throw new Error(`unknown type ${type}`);
        out[name] = T.deserializeBinary(Buffer.from(base64, 'base64')).toObject();
    }
    return out;
}

if (process.argv[2] === 'encode') {
    console.log(JSON.stringify(encode()));
} else if (process.argv[2] === 'decode') {
    let text = '';
    process.stdin.on('data', (d) => { text += d; });
    process.stdin.on('end', () => console.log(JSON.stringify(decode(JSON.parse(text)))));
} else {
    console.error('usage: node wire_compat.js encode|decode');
    process.exit(2);
}
