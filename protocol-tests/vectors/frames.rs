//! Annotated SMPP 3.4 frames. Each line is one field; `#` starts its annotation.
//! Lengths and layouts follow SMPP 3.4 §4 (PDU definitions) and §5 (fields).

/// SMPP 3.4 §4.1.1 bind_transmitter, the example the rusmpp docs annotate (system_id SMPP3TEST).
pub const BIND_TRANSMITTER: &str = r#"
    00 00 00 2F                                      # command_length (47)
    00 00 00 02                                      # command_id bind_transmitter
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 01                                      # sequence_number (1)
    53 4D 50 50 33 54 45 53 54 00                    # system_id "SMPP3TEST"
    73 65 63 72 65 74 30 38 00                       # password "secret08"
    53 55 42 4D 49 54 31 00                          # system_type "SUBMIT1"
    34                                               # interface_version 3.4
    01                                               # addr_ton international
    01                                               # addr_npi isdn
    00                                               # address_range (NULL)
"#;

/// bind_receiver for short code 5700.
pub const BIND_RECEIVER: &str = r#"
    00 00 00 24                                      # command_length (36)
    00 00 00 01                                      # command_id bind_receiver
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 02                                      # sequence_number (2)
    73 6D 73 66 6C 6F 77 00                          # system_id
    70 77 00                                         # password
    00                                               # system_type (NULL)
    34                                               # interface_version
    03                                               # addr_ton network specific
    00                                               # addr_npi unknown
    35 37 30 30 00                                   # address_range
"#;

/// bind_transceiver.
pub const BIND_TRANSCEIVER: &str = r#"
    00 00 00 28                                      # command_length (40)
    00 00 00 09                                      # command_id bind_transceiver
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 03                                      # sequence_number (3)
    73 6D 73 66 6C 6F 77 00                          # system_id
    73 6D 73 66 6C 6F 77 00                          # password
    43 53 49 00                                      # system_type
    34                                               # interface_version
    00                                               # addr_ton
    00                                               # addr_npi
    00                                               # address_range
"#;

/// bind_transceiver_resp with sc_interface_version.
pub const BIND_TRANSCEIVER_RESP: &str = r#"
    00 00 00 1A                                      # command_length (26)
    80 00 00 09                                      # command_id bind_transceiver_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 03                                      # sequence_number (3)
    53 4D 53 43 00                                   # system_id "SMSC"
    02 10 00 01 34                                   # tlv sc_interface_version = 0x34
"#;

/// bind_transmitter_resp without TLVs.
pub const BIND_TRANSMITTER_RESP: &str = r#"
    00 00 00 1B                                      # command_length (27)
    80 00 00 02                                      # command_id bind_transmitter_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 01                                      # sequence_number (1)
    70 6C 61 79 6D 6F 62 69 6C 65 00                 # system_id
"#;

/// bind_receiver_resp ESME_RINVPASWD with no body.
pub const BIND_RECEIVER_RESP_INVALID_PASSWORD: &str = r#"
    00 00 00 10                                      # command_length (16)
    80 00 00 01                                      # command_id bind_receiver_resp
    00 00 00 0E                                      # command_status 0x0E
    00 00 00 02                                      # sequence_number (2)
"#;

/// outbind (SMPP 3.4 §4.1.7).
pub const OUTBIND: &str = r#"
    00 00 00 18                                      # command_length (24)
    00 00 00 0B                                      # command_id outbind
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 04                                      # sequence_number (4)
    53 4D 53 43 00                                   # system_id
    70 77 00                                         # password
"#;

/// submit_sm "Thanks!" in GSM 7-bit (unpacked), registered delivery.
pub const SUBMIT_SM_GSM: &str = r#"
    00 00 00 38                                      # command_length (56)
    00 00 00 04                                      # command_id submit_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 05                                      # sequence_number (5)
    00                                               # service_type
    03                                               # source_addr_ton
    00                                               # source_addr_npi
    35 37 30 30 00                                   # source_addr
    01                                               # dest_addr_ton
    01                                               # dest_addr_npi
    39 39 38 39 30 31 32 33 34 35 36 37 00           # destination_addr
    00                                               # esm_class
    00                                               # protocol_id
    00                                               # priority_flag
    00                                               # schedule_delivery_time
    00                                               # validity_period
    01                                               # registered_delivery
    00                                               # replace_if_present_flag
    00                                               # data_coding GSM
    00                                               # sm_default_msg_id
    07                                               # sm_length
    54 68 61 6E 6B 73 21                             # short_message "Thanks!"
"#;

/// submit_sm_resp with a hex message id.
pub const SUBMIT_SM_RESP: &str = r#"
    00 00 00 19                                      # command_length (25)
    80 00 00 04                                      # command_id submit_sm_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 05                                      # sequence_number (5)
    35 45 30 46 31 41 32 42 00                       # message_id "5E0F1A2B"
"#;

/// deliver_sm: a subscriber answers "5" in GSM 7-bit.
pub const DELIVER_SM_GSM_RATING: &str = r#"
    00 00 00 32                                      # command_length (50)
    00 00 00 05                                      # command_id deliver_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 06                                      # sequence_number (6)
    00                                               # service_type
    01                                               # source_addr_ton international
    01                                               # source_addr_npi isdn
    39 39 38 39 30 31 32 33 34 35 36 37 00           # source_addr
    03                                               # dest_addr_ton
    00                                               # dest_addr_npi
    35 37 30 30 00                                   # destination_addr
    00                                               # esm_class
    00                                               # protocol_id
    00                                               # priority_flag
    00                                               # schedule_delivery_time
    00                                               # validity_period
    00                                               # registered_delivery
    00                                               # replace_if_present_flag
    00                                               # data_coding GSM
    00                                               # sm_default_msg_id
    01                                               # sm_length
    35                                               # short_message "5"
"#;

/// deliver_sm: part 1 of 2 of a UCS-2 comment, 8-bit reference 0x2A in the UDH.
pub const DELIVER_SM_UCS2_UDH: &str = r#"
    00 00 00 5D                                      # command_length (93)
    00 00 00 05                                      # command_id deliver_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 07                                      # sequence_number (7)
    00                                               # service_type
    01                                               # source_addr_ton
    01                                               # source_addr_npi
    39 39 38 39 30 31 32 33 34 35 36 37 00           # source_addr
    03                                               # dest_addr_ton
    00                                               # dest_addr_npi
    35 37 30 30 00                                   # destination_addr
    40                                               # esm_class UDHI
    00                                               # protocol_id
    00                                               # priority_flag
    00                                               # schedule_delivery_time
    00                                               # validity_period
    00                                               # registered_delivery
    00                                               # replace_if_present_flag
    08                                               # data_coding UCS-2
    00                                               # sm_default_msg_id
    2C                                               # sm_length (44)
    05 00 03 2A 02 01                                # udh: concat 8-bit ref 0x2A, 2 parts, part 1
    04 1E 04 3F 04 35 04 40 04 30 04 42 04 3E 04 40  # "Оператор был вежлив" UTF-16BE
    00 20 04 31 04 4B 04 3B 00 20 04 32 04 35 04 36  # …
    04 3B 04 38 04 32                                # …
"#;

/// deliver_sm: delivery receipt with receipted_message_id and message_state TLVs.
pub const DELIVER_SM_RECEIPT: &str = r#"
    00 00 00 B5                                      # command_length (181)
    00 00 00 05                                      # command_id deliver_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 08                                      # sequence_number (8)
    00                                               # service_type
    01                                               # source_addr_ton
    01                                               # source_addr_npi
    39 39 38 39 30 31 32 33 34 35 36 37 00           # source_addr
    03                                               # dest_addr_ton
    00                                               # dest_addr_npi
    35 37 30 30 00                                   # destination_addr
    04                                               # esm_class delivery receipt
    00                                               # protocol_id
    00                                               # priority_flag
    00                                               # schedule_delivery_time
    00                                               # validity_period
    00                                               # registered_delivery
    00                                               # replace_if_present_flag
    00                                               # data_coding
    00                                               # sm_default_msg_id
    6B                                               # sm_length (107)
    69 64 3A 35 45 30 46 31 41 32 42 20 73 75 62 3A  # short_message: receipt text
    30 30 31 20 64 6C 76 72 64 3A 30 30 31 20 73 75  # …
    62 6D 69 74 20 64 61 74 65 3A 32 36 31 31 32 32  # …
    31 34 33 30 20 64 6F 6E 65 20 64 61 74 65 3A 32  # …
    36 31 31 32 32 31 34 33 31 20 73 74 61 74 3A 44  # …
    45 4C 49 56 52 44 20 65 72 72 3A 30 30 30 20 74  # …
    65 78 74 3A 54 68 61 6E 6B 73 21                 # …
    00 1E 00 09 35 45 30 46 31 41 32 42 00           # tlv receipted_message_id "5E0F1A2B"
    04 27 00 01 02                                   # tlv message_state DELIVERED
    04 23 00 03 03 00 00                             # tlv network_error_code GSM 0
"#;

/// deliver_sm_resp: message_id is NULL.
pub const DELIVER_SM_RESP: &str = r#"
    00 00 00 11                                      # command_length (17)
    80 00 00 05                                      # command_id deliver_sm_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 06                                      # sequence_number (6)
    00                                               # message_id (NULL)
"#;

/// data_sm MO with the text in message_payload.
pub const DATA_SM: &str = r#"
    00 00 00 32                                      # command_length (50)
    00 00 01 03                                      # command_id data_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 09                                      # sequence_number (9)
    00                                               # service_type
    01                                               # source_addr_ton
    01                                               # source_addr_npi
    39 39 38 39 30 31 32 33 34 35 36 37 00           # source_addr
    03                                               # dest_addr_ton
    00                                               # dest_addr_npi
    35 37 30 30 00                                   # destination_addr
    00                                               # esm_class
    00                                               # registered_delivery
    00                                               # data_coding
    04 24 00 04 34 20 6F 6B                          # tlv message_payload "4 ok"
"#;

/// data_sm_resp.
pub const DATA_SM_RESP: &str = r#"
    00 00 00 13                                      # command_length (19)
    80 00 01 03                                      # command_id data_sm_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 09                                      # sequence_number (9)
    37 37 00                                         # message_id "77"
"#;

/// query_sm.
pub const QUERY_SM: &str = r#"
    00 00 00 20                                      # command_length (32)
    00 00 00 03                                      # command_id query_sm
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0A                                      # sequence_number (10)
    35 45 30 46 31 41 32 42 00                       # message_id
    03                                               # source_addr_ton
    00                                               # source_addr_npi
    35 37 30 30 00                                   # source_addr
"#;

/// query_sm_resp: delivered.
pub const QUERY_SM_RESP: &str = r#"
    00 00 00 2C                                      # command_length (44)
    80 00 00 03                                      # command_id query_sm_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0A                                      # sequence_number (10)
    35 45 30 46 31 41 32 42 00                       # message_id
    32 36 31 31 32 32 31 34 33 31 30 30 30 30 30 2B  # final_date
    00                                               # …
    02                                               # message_state DELIVERED
    00                                               # error_code
"#;

/// submit_multi_resp with one unsuccessful destination.
pub const SUBMIT_MULTI_RESP: &str = r#"
    00 00 00 27                                      # command_length (39)
    80 00 00 21                                      # command_id submit_multi_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0B                                      # sequence_number (11)
    4D 31 00                                         # message_id
    01                                               # no_unsuccess
    01                                               # dest_addr_ton
    01                                               # dest_addr_npi
    39 39 38 39 30 30 30 30 30 30 30 30 00           # destination_addr
    00 00 00 0B                                      # error_status_code ESME_RINVDSTADR
"#;

/// alert_notification with ms_availability_status.
pub const ALERT_NOTIFICATION: &str = r#"
    00 00 00 2B                                      # command_length (43)
    00 00 01 02                                      # command_id alert_notification
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0C                                      # sequence_number (12)
    01                                               # source_addr_ton
    01                                               # source_addr_npi
    39 39 38 39 30 31 32 33 34 35 36 37 00           # source_addr
    03                                               # esme_addr_ton
    00                                               # esme_addr_npi
    35 37 30 30 00                                   # esme_addr
    04 22 00 01 00                                   # tlv ms_availability_status available
"#;

/// enquire_link.
pub const ENQUIRE_LINK: &str = r#"
    00 00 00 10                                      # command_length (16)
    00 00 00 15                                      # command_id enquire_link
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0D                                      # sequence_number (13)
"#;

/// enquire_link_resp.
pub const ENQUIRE_LINK_RESP: &str = r#"
    00 00 00 10                                      # command_length (16)
    80 00 00 15                                      # command_id enquire_link_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0D                                      # sequence_number (13)
"#;

/// unbind.
pub const UNBIND: &str = r#"
    00 00 00 10                                      # command_length (16)
    00 00 00 06                                      # command_id unbind
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0E                                      # sequence_number (14)
"#;

/// unbind_resp.
pub const UNBIND_RESP: &str = r#"
    00 00 00 10                                      # command_length (16)
    80 00 00 06                                      # command_id unbind_resp
    00 00 00 00                                      # command_status ESME_ROK
    00 00 00 0E                                      # sequence_number (14)
"#;

/// generic_nack ESME_RINVCMDID.
pub const GENERIC_NACK: &str = r#"
    00 00 00 10                                      # command_length (16)
    80 00 00 00                                      # command_id generic_nack
    00 00 00 03                                      # command_status 0x03
    00 00 00 0F                                      # sequence_number (15)
"#;
