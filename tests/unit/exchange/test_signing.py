"""Signing: the test vectors from ../shared/bingx/API.md section 1.3, and the simulator's rule."""

from __future__ import annotations

from urllib.parse import parse_qsl

from exchange.bingx.signing import payload, signature, signed_query, verify

SECRET = "mheO6dR8ovSsxZQCOYEFCtelpuxcWGTfHw7te326y6jOwq5WpvFQ9JNljoTwBXZGv5It07m9RXSPpDQEK2w"


def test_vector_s1_signs_the_string_as_given() -> None:
    message = "symbol=BTC-USDT&timestamp=1667872120843&side=LONG&leverage=6"
    assert signature(SECRET, message) == "4f581ecdb1fa09b9d6e57886b6f70cffed17f82b93399722939e49a38edec2bf"


def test_vector_s2_matches_the_sorted_payload() -> None:
    params = {"symbol": "BTC-USDT", "timestamp": "1696751141337", "recvWindow": "0"}
    assert payload(params) == "recvWindow=0&symbol=BTC-USDT&timestamp=1696751141337"
    assert signature(SECRET, payload(params)) == "f8d883609dfd31c824feb4de865b071008dedb1d461451fa70847875c8e7a7a2"


def test_signed_query_encodes_values_but_signs_them_raw() -> None:
    params = {"symbol": "BTC-USDT", "orderIdList": "[1,2]", "timestamp": "1"}
    query = signed_query(params, SECRET)
    assert query.startswith("orderIdList=%5B1%2C2%5D&symbol=BTC-USDT&timestamp=1&signature=")
    pairs = parse_qsl(query)
    received_signature = dict(pairs).pop("signature")
    assert received_signature == signature(SECRET, "orderIdList=[1,2]&symbol=BTC-USDT&timestamp=1")
    assert verify([p for p in pairs if p[0] != "signature"], SECRET, received_signature)


def test_verify_accepts_received_order_or_sorted_and_refuses_tampering() -> None:
    unsorted = [("symbol", "BTC-USDT"), ("timestamp", "1667872120843"), ("side", "LONG"), ("leverage", "6")]
    good = "4f581ecdb1fa09b9d6e57886b6f70cffed17f82b93399722939e49a38edec2bf"
    assert verify(unsorted, SECRET, good)
    sorted_signature = signature(SECRET, payload(dict(unsorted)))
    assert verify(list(reversed(unsorted)), SECRET, sorted_signature)
    tampered = [*unsorted[:3], ("leverage", "7")]
    assert not verify(tampered, SECRET, good)
    assert not verify(unsorted, "another-secret", good)
