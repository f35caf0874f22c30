use super::*;
use proptest::prelude::*;

const T0_SECS: u64 = 1_700_000_000;
const TTL: Duration = Duration::from_secs(60);

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0_SECS + secs)
}

fn part(source: &str, reference: u16, total: u8, seq: u8, payload: &[u8]) -> Part {
    Part {
        source: source.to_owned(),
        destination: "12345".to_owned(),
        concat: ConcatInfo {
            reference,
            total,
            seq,
        },
        data_coding: 0,
        payload: payload.to_vec(),
    }
}

fn complete(offer: Offer) -> Assembled {
    match offer {
        Offer::Complete(a) => a,
        other => panic!("expected Complete, got {other:?}"),
    }
}

#[test]
fn held_bytes_are_bounded_oldest_message_first() {
    let mut r = Reassembler::new(TTL, 10_000).with_max_bytes(1_000);
    let big = [b'x'; 140];
    // Seven 140-byte parts of seven messages fit (980 bytes) ...
    for (i, reference) in (1..=7u16).enumerate() {
        r.offer(t(i as u64), part("998901", reference, 254, 1, &big))
            .unwrap();
    }
    assert_eq!((r.pending(), r.held_bytes()), (7, 980));
    assert!(r.take_evicted().is_empty());
    // ... the eighth pushes out the oldest, released incomplete with what it had.
    r.offer(t(10), part("998901", 8, 254, 1, &big)).unwrap();
    let evicted = r.take_evicted();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].key.reference, 1);
    assert_eq!(evicted[0].parts.len(), 1);
    assert_eq!((r.pending(), r.held_bytes()), (7, 980));
    // A second part of a held message counts too.
    r.offer(t(11), part("998901", 8, 254, 2, &big)).unwrap();
    assert_eq!(r.take_evicted()[0].key.reference, 2);
    // Completing a message gives its bytes back.
    let mut r = Reassembler::new(TTL, 10).with_max_bytes(1_000);
    r.offer(t(0), part("998901", 1, 2, 1, b"ab")).unwrap();
    complete(r.offer(t(1), part("998901", 1, 2, 2, b"cd")).unwrap());
    assert_eq!(r.held_bytes(), 0);
}

#[test]
fn eight_bit_reference_message_in_order_completes_on_last_part() {
    // From a UDH IE 0x00: reference 0x2a, 3 parts.
    let mut r = Reassembler::new(TTL, 10);
    assert_eq!(
        r.offer(t(0), part("447700", 0x2a, 3, 1, b"Hel")),
        Ok(Offer::Stored {
            received: 1,
            total: 3
        })
    );
    assert_eq!(
        r.offer(t(1), part("447700", 0x2a, 3, 2, b"lo ")),
        Ok(Offer::Stored {
            received: 2,
            total: 3
        })
    );
    let a = complete(r.offer(t(2), part("447700", 0x2a, 3, 3, b"world")).unwrap());
    assert!(a.is_complete());
    assert_eq!(a.payload(), b"Hello world");
    assert_eq!(a.data_coding(), Some(0));
    assert_eq!(a.first_seen, t(0));
    assert_eq!(a.key.reference, 0x2a);
    assert_eq!(r.pending(), 0);
    assert_eq!(r.next_expiry(), None);
}

#[test]
fn sixteen_bit_reference_above_255_reversed_completes() {
    // From a UDH IE 0x08: reference 0xbeef does not fit in 8 bits.
    let mut r = Reassembler::new(TTL, 10);
    for seq in (2..=4).rev() {
        let payload = [b'0' + seq];
        assert!(matches!(
            r.offer(t(0), part("a", 0xbeef, 4, seq, &payload)),
            Ok(Offer::Stored { .. })
        ));
    }
    let a = complete(r.offer(t(1), part("a", 0xbeef, 4, 1, b"1")).unwrap());
    assert_eq!(a.key.reference, 0xbeef);
    assert_eq!(a.payload(), b"1234");
    assert_eq!(
        a.parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn sar_style_shuffled_parts_complete_in_order() {
    // From TLVs sar_msg_ref_num (u16), sar_total_segments, sar_segment_seqnum.
    let mut r = Reassembler::new(TTL, 10);
    for seq in [3, 1, 5, 2] {
        let payload = [b'a' + seq - 1];
        assert!(matches!(
            r.offer(t(0), part("sar", 0x1234, 5, seq, &payload)),
            Ok(Offer::Stored { .. })
        ));
    }
    let a = complete(r.offer(t(0), part("sar", 0x1234, 5, 4, b"d")).unwrap());
    assert_eq!(a.payload(), b"abcde");
    assert!(a.missing.is_empty());
}

#[test]
fn single_part_message_completes_at_once_without_being_stored() {
    let mut r = Reassembler::new(TTL, 10);
    let a = complete(r.offer(t(5), part("a", 7, 1, 1, b"solo")).unwrap());
    assert_eq!(a.payload(), b"solo");
    assert_eq!(a.first_seen, t(5));
    assert_eq!(r.pending(), 0);
}

#[test]
fn duplicate_part_is_ignored_and_first_copy_kept() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 2, 1, b"first")).unwrap();
    assert_eq!(
        r.offer(t(1), part("a", 1, 2, 1, b"second")),
        Ok(Offer::Duplicate)
    );
    let a = complete(r.offer(t(2), part("a", 1, 2, 2, b"!")).unwrap());
    assert_eq!(a.payload(), b"first!");
}

#[test]
fn duplicate_after_completion_starts_a_new_message() {
    // Documented limitation: the service dedups redelivered MOs, not this module.
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
    complete(r.offer(t(0), part("a", 1, 2, 2, b"y")).unwrap());
    assert_eq!(
        r.offer(t(1), part("a", 1, 2, 2, b"y")),
        Ok(Offer::Stored {
            received: 1,
            total: 2
        })
    );
}

#[test]
fn interleaved_messages_from_same_sender_with_different_references_stay_apart() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 10, 2, 1, b"A1")).unwrap();
    r.offer(t(0), part("a", 11, 2, 2, b"B2")).unwrap();
    assert_eq!(r.pending(), 2);
    let b = complete(r.offer(t(1), part("a", 11, 2, 1, b"B1")).unwrap());
    assert_eq!(b.key.reference, 11);
    assert_eq!(b.payload(), b"B1B2");
    let a = complete(r.offer(t(1), part("a", 10, 2, 2, b"A2")).unwrap());
    assert_eq!(a.key.reference, 10);
    assert_eq!(a.payload(), b"A1A2");
}

#[test]
fn same_reference_from_different_senders_stays_apart() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 5, 2, 1, b"a")).unwrap();
    assert!(matches!(
        r.offer(t(0), part("b", 5, 2, 1, b"b")),
        Ok(Offer::Stored { received: 1, .. })
    ));
    assert_eq!(r.pending(), 2);
}

#[test]
fn same_reference_with_different_total_is_a_different_message() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 9, 2, 1, b"two-1")).unwrap();
    // Same seq 1, but total 3: not a duplicate.
    assert_eq!(
        r.offer(t(0), part("a", 9, 3, 1, b"three-1")),
        Ok(Offer::Stored {
            received: 1,
            total: 3
        })
    );
    let two = complete(r.offer(t(0), part("a", 9, 2, 2, b"two-2")).unwrap());
    assert_eq!(two.payload(), b"two-1two-2");
    assert_eq!(r.pending(), 1);
}

#[test]
fn ttl_expiry_releases_incomplete_message_with_missing_seqs() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 5, 2, b"b")).unwrap();
    r.offer(t(10), part("a", 1, 5, 4, b"d")).unwrap();
    r.offer(t(30), part("b", 2, 2, 1, b"other")).unwrap();
    // Later parts do not extend the first part's clock.
    assert_eq!(r.next_expiry(), Some(t(60)));
    let released = r.expire(t(61));
    assert_eq!(released.len(), 1);
    let a = &released[0];
    assert!(!a.is_complete());
    assert_eq!(a.missing, vec![1, 3, 5]);
    assert_eq!(
        a.parts.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![2, 4]
    );
    assert_eq!(a.first_seen, t(0));
    assert_eq!(r.pending(), 1);
    assert_eq!(r.next_expiry(), Some(t(90)));
}

#[test]
fn expiry_boundary_is_inclusive_at_first_seen_plus_ttl() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
    let deadline = t(0) + TTL;
    assert_eq!(r.next_expiry(), Some(deadline));
    assert!(r.expire(deadline - Duration::from_nanos(1)).is_empty());
    assert_eq!(r.pending(), 1);
    let released = r.expire(deadline);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].missing, vec![2]);
    assert_eq!(r.next_expiry(), None);
}

#[test]
fn expire_releases_all_due_messages_oldest_first() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(20), part("b", 1, 2, 1, b"")).unwrap();
    r.offer(t(10), part("a", 1, 2, 1, b"")).unwrap();
    r.offer(t(30), part("c", 1, 2, 1, b"")).unwrap();
    let released = r.expire(t(100));
    let sources: Vec<_> = released.iter().map(|a| a.key.source.as_str()).collect();
    assert_eq!(sources, vec!["a", "b", "c"]);
}

#[test]
fn late_part_before_expire_is_called_still_completes() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 2, 1, b"x")).unwrap();
    let a = complete(r.offer(t(600), part("a", 1, 2, 2, b"y")).unwrap());
    assert_eq!(a.payload(), b"xy");
}

#[test]
fn max_pending_eviction_releases_oldest_first_seen_into_queue() {
    let mut r = Reassembler::new(TTL, 2);
    r.offer(t(1), part("a", 1, 3, 1, b"a1")).unwrap();
    r.offer(t(2), part("b", 1, 3, 2, b"b2")).unwrap();
    // A later part of "a" does not refresh its age.
    r.offer(t(3), part("a", 1, 3, 3, b"a3")).unwrap();
    assert!(r.take_evicted().is_empty());
    r.offer(t(4), part("c", 1, 3, 1, b"c1")).unwrap();
    assert_eq!(r.pending(), 2);
    r.offer(t(5), part("d", 1, 3, 1, b"d1")).unwrap();
    let evicted = r.take_evicted();
    let sources: Vec<_> = evicted.iter().map(|a| a.key.source.as_str()).collect();
    assert_eq!(sources, vec!["a", "b"]);
    assert_eq!(evicted[0].missing, vec![2]);
    assert_eq!(evicted[0].payload(), b"a1a3");
    assert!(r.take_evicted().is_empty(), "taking drains the queue");
    assert_eq!(r.pending(), 2);
}

#[test]
fn zero_max_pending_is_treated_as_one() {
    let mut r = Reassembler::new(TTL, 0);
    r.offer(t(0), part("a", 1, 2, 1, b"")).unwrap();
    assert_eq!(r.pending(), 1);
    assert!(r.take_evicted().is_empty());
}

#[test]
fn serde_json_round_trip_mid_message_then_completes_after_deserialisation() {
    let mut r = Reassembler::new(TTL, 1);
    r.offer(t(0), part("old", 1, 2, 1, b"evicted")).unwrap();
    r.offer(t(1), part("a", 300, 3, 3, b"!")).unwrap();
    r.offer(t(2), part("a", 300, 3, 1, b"hi")).unwrap();
    r.offer(t(2), part("a", 301, 1, 1, b"solo")).unwrap();

    let json = serde_json::to_string(&r).unwrap();
    let mut restored: Reassembler = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.pending(), 1);
    assert_eq!(restored.next_expiry(), Some(t(1) + TTL));
    assert_eq!(
        restored.offer(t(3), part("a", 300, 3, 1, b"dup")),
        Ok(Offer::Duplicate)
    );
    let a = complete(
        restored
            .offer(t(3), part("a", 300, 3, 2, b" there"))
            .unwrap(),
    );
    assert_eq!(a.payload(), b"hi there!");
    assert_eq!(a.first_seen, t(1));
    let evicted = restored.take_evicted();
    assert_eq!(evicted.len(), 1, "the eviction queue is persisted too");
    assert_eq!(evicted[0].key.source, "old");
}

#[test]
fn corrupted_persisted_state_is_refused_not_trusted() {
    let mut r = Reassembler::new(TTL, 10);
    r.offer(t(0), part("a", 1, 3, 2, b"x")).unwrap();
    let good = serde_json::to_value(&r).unwrap();

    let mut bad_seq = good.clone();
    bad_seq["pending"][0]["parts"][0]["seq"] = 9.into();
    let err = serde_json::from_value::<Reassembler>(bad_seq).unwrap_err();
    assert!(err.to_string().contains("seq 9"), "{err}");

    let mut dup = good.clone();
    let entry = dup["pending"][0].clone();
    dup["pending"].as_array_mut().unwrap().push(entry);
    assert!(serde_json::from_value::<Reassembler>(dup).is_err());

    let mut empty = good;
    empty["pending"][0]["parts"] = serde_json::json!([]);
    assert!(serde_json::from_value::<Reassembler>(empty).is_err());
}

#[test]
fn invalid_seq_and_total_are_rejected_and_nothing_is_stored() {
    let mut r = Reassembler::new(TTL, 10);
    assert_eq!(
        r.offer(t(0), part("a", 4, 3, 0, b"")),
        Err(PartError::SeqOutOfRange {
            reference: 4,
            seq: 0,
            total: 3
        })
    );
    assert_eq!(
        r.offer(t(0), part("a", 4, 3, 4, b"")),
        Err(PartError::SeqOutOfRange {
            reference: 4,
            seq: 4,
            total: 3
        })
    );
    let err = r.offer(t(0), part("a", 4, 0, 1, b"")).unwrap_err();
    assert_eq!(err, PartError::ZeroTotal { reference: 4 });
    assert_eq!(
        err.to_string(),
        "concatenated message total is 0 (reference 4)"
    );
    assert_eq!(r.pending(), 0);
}

#[test]
fn mixed_data_codings_are_kept_per_part() {
    let mut r = Reassembler::new(TTL, 10);
    let mut p1 = part("a", 1, 2, 1, b"ab");
    p1.data_coding = 0x00;
    let mut p2 = part("a", 1, 2, 2, &[0x00, 0x41]);
    p2.data_coding = 0x08;
    r.offer(t(0), p2).unwrap();
    let a = complete(r.offer(t(0), p1).unwrap());
    assert_eq!(a.data_coding(), None);
    assert_eq!(a.parts[0].data_coding, 0x00);
    assert_eq!(a.parts[1].data_coding, 0x08);
}

/// A permutation of `1..=total`, plus duplicates (of any part but the one that completes
/// the message) inserted anywhere before the completing part.
fn arrivals() -> impl Strategy<Value = (u8, Vec<(u8, bool)>)> {
    (1u8..=10)
        .prop_flat_map(|total| {
            let seqs: Vec<u8> = (1..=total).collect();
            (
                Just(total),
                Just(seqs).prop_shuffle(),
                proptest::collection::vec((any::<usize>(), any::<usize>()), 0..6),
            )
        })
        .prop_map(|(total, perm, dups)| {
            let Some((&last, head)) = perm.split_last() else {
                return (total, Vec::new());
            };
            let mut order: Vec<(u8, bool)> = head.iter().map(|&s| (s, false)).collect();
            if !head.is_empty() {
                for (which, at) in dups {
                    let seq = head[which % head.len()];
                    order.insert(at % (order.len() + 1), (seq, true));
                }
            }
            order.push((last, false));
            (total, order)
        })
}

proptest! {
    #[test]
    fn any_arrival_order_with_duplicates_completes_exactly_once_in_order(
        (total, order) in arrivals()
    ) {
        let mut r = Reassembler::new(TTL, 4);
        let mut seen = std::collections::BTreeMap::new();
        let mut completions = Vec::new();
        for (i, &(seq, is_dup)) in order.iter().enumerate() {
            let payload = vec![seq, u8::from(is_dup)];
            let offer = r.offer(t(i as u64), part("p", 0x0101, total, seq, &payload)).unwrap();
            let first_copy = !seen.contains_key(&seq);
            seen.entry(seq).or_insert(payload);
            match offer {
                Offer::Complete(a) => completions.push(a),
                Offer::Duplicate => prop_assert!(!first_copy),
                Offer::Stored { received, total: t } => {
                    prop_assert!(first_copy);
                    prop_assert_eq!(usize::from(received), seen.len());
                    prop_assert_eq!(t, total);
                }
            }
        }
        prop_assert_eq!(completions.len(), 1);
        let a = &completions[0];
        prop_assert!(a.is_complete());
        let seqs: Vec<u8> = a.parts.iter().map(|p| p.seq).collect();
        prop_assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        for p in &a.parts {
            prop_assert_eq!(Some(&p.payload), seen.get(&p.seq), "first copy kept");
        }
        prop_assert_eq!(r.pending(), 0);
        prop_assert!(r.take_evicted().is_empty());
    }

    #[test]
    fn offer_never_panics_and_never_loses_a_part(
        parts in proptest::collection::vec((0u16..3, 0u8..5, 0u8..6, 0u64..200), 0..40),
        expire_at in 0u64..300,
    ) {
        let mut r = Reassembler::new(TTL, 3);
        let mut accepted = 0usize;
        let mut released = 0usize;
        for (reference, total, seq, at) in parts {
            match r.offer(t(at), part("x", reference, total, seq, b"")) {
                Ok(Offer::Complete(a)) => released += a.parts.len(),
                Ok(Offer::Stored { .. }) => {}
                Ok(Offer::Duplicate) | Err(_) => continue,
            }
            accepted += 1;
        }
        released += r.expire(t(expire_at)).iter().map(|a| a.parts.len()).sum::<usize>();
        released += r.take_evicted().iter().map(|a| a.parts.len()).sum::<usize>();
        released += r.expire(t(10_000)).iter().map(|a| a.parts.len()).sum::<usize>();
        prop_assert_eq!(accepted, released);
        prop_assert_eq!(r.pending(), 0);
    }
}
