-- Call quality in each call record: the round trip RTCP measured (NULL: the far end sent no
-- report echoing ours) and the mean opinion score (ITU-T G.107 E-model, simplified) from the
-- loss, jitter and delay the customer's audio went through (NULL: the leg carried no audio).
ALTER TABLE call_records ADD COLUMN rtt_ms DOUBLE PRECISION;
ALTER TABLE call_records ADD COLUMN mos DOUBLE PRECISION;
