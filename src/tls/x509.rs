//! Just enough DER to read two things webpki keeps to itself: a certificate's validity dates
//! (a pinned certificate is accepted without webpki's chain check, so its dates are checked
//! here) and its subject's common name (for messages).
//!
//! Input is either a `tls_ca` certificate the operator gave or one the SMSC presented; any
//! malformed or unexpected encoding is `None`, never a panic. Only what RFC 5280 allows is
//! read: definite lengths of at most four octets, single-octet tags, UTCTime and
//! GeneralizedTime in their `Z` forms.

use rustls::pki_types::UnixTime;

/// A certificate's `validity`: it may be used from `not_before` to `not_after` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: UnixTime,
    pub not_after: UnixTime,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The validity of the DER certificate `cert`.
pub fn validity(cert: &[u8]) -> Option<Validity> {
    let mut validity = Reader(tbs_field(cert, 3)?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// The first common name (CN) of the certificate's subject, if it has one in a string type.
pub fn subject_common_name(cert: &[u8]) -> Option<String> {
    let mut rdns = Reader(tbs_field(cert, 4)?);
    while let Some((SET, rdn)) = rdns.next() {
        let mut attributes = Reader(rdn);
        while let Some((SEQUENCE, attribute)) = attributes.next() {
            let mut parts = Reader(attribute);
            if parts.next() == Some((OID, COMMON_NAME)) {
                // UTF8String, PrintableString, T61String, IA5String: bytes as text.
                return match parts.next()? {
                    (0x0c | 0x13 | 0x14 | 0x16, value) => {
                        Some(String::from_utf8_lossy(value).into_owned())
                    }
                    _ => None,
                };
            }
        }
    }
    None
}

/// The contents of the tbsCertificate field at `index` after the optional version: 0 serial,
/// 1 signature algorithm, 2 issuer, 3 validity, 4 subject, 5 subjectPublicKeyInfo.
fn tbs_field(cert: &[u8], index: usize) -> Option<&[u8]> {
    let (SEQUENCE, certificate) = Reader(cert).next()? else {
        return None;
    };
    let (SEQUENCE, tbs) = Reader(certificate).next()? else {
        return None;
    };
    let mut fields = Reader(tbs);
    let mut field = fields.next()?;
    if field.0 == 0xa0 {
        // [0] EXPLICIT version.
        field = fields.next()?;
    }
    for _ in 0..index {
        field = fields.next()?;
    }
    Some(field.1)
}

/// A DER reader over a run of TLVs.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// The next TLV's tag and contents; `None` at the end or on a malformed one.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                if rest.len() < n {
                    return None;
                }
                let (octets, rest) = rest.split_at(n);
                let length = octets
                    .iter()
                    .fold(0usize, |l, &b| (l << 8) | usize::from(b));
                (length, rest)
            }
            _ => return None,
        };
        if rest.len() < length {
            return None;
        }
        let (contents, rest) = rest.split_at(length);
        self.0 = rest;
        Some((tag, contents))
    }
}

/// A `Time` (UTCTime `YYMMDDHHMMSSZ`, years 1950–2049, or GeneralizedTime `YYYYMMDDHHMMSSZ`).
fn time((tag, text): (u8, &[u8])) -> Option<UnixTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
    };
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| digits(rest + 2 * i..rest + 2 * i + 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(seconds).ok()?,
    )))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds))
    }

    #[test]
    fn validity_and_common_name_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Carrier");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "smpp.carrier.example");
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            validity(cert.der()),
            Some(Validity {
                // 2024-02-29T00:00:00Z and 2051-01-01T00:00:00Z (a GeneralizedTime).
                not_before: at(1_709_164_800),
                not_after: at(2_556_144_000),
            })
        );
        assert_eq!(
            subject_common_name(cert.der()).as_deref(),
            Some("smpp.carrier.example")
        );
    }

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(time((UTC_TIME, b"700101000000Z")), Some(at(0)));
        assert_eq!(time((UTC_TIME, b"491231235959Z")), Some(at(2_524_607_999)));
        assert_eq!(
            time((GENERALIZED_TIME, b"20000301000000Z")),
            Some(at(951_868_800))
        );
        assert_eq!(time((UTC_TIME, b"700101000000+0100")), None);
        assert_eq!(time((UTC_TIME, b"701301000000Z")), None);
        assert_eq!(time((GENERALIZED_TIME, b"2000030100000Z")), None);
    }

    #[test]
    fn malformed_input_is_none() {
        for bytes in [
            &b""[..],
            &[0x30],
            &[0x30, 0x85, 0, 0, 0, 0, 1],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x30, 0x82, 0xff, 0xff, 0x30],
        ] {
            assert_eq!(validity(bytes), None, "{bytes:?}");
            assert_eq!(subject_common_name(bytes), None, "{bytes:?}");
        }
    }
}
