"""Korean phone numbers as people type them."""

import pytest

from contactd.crm.phone import PhoneNumberError, display, is_mobile, normalize


@pytest.mark.parametrize(
    ("raw", "digits", "shown"),
    [
        ("010-1234-5678", "01012345678", "010-1234-5678"),
        ("01012345678", "01012345678", "010-1234-5678"),
        ("02-123-4567", "021234567", "02-123-4567"),
        ("+82 10 1234 5678", "01012345678", "010-1234-5678"),
        ("+82-2-1234-5678", "0212345678", "02-1234-5678"),
        ("031 123 4567", "0311234567", "031-123-4567"),
        ("1588-1234", "15881234", "1588-1234"),
    ],
)
def test_normalize_and_display(raw: str, digits: str, shown: str) -> None:
    assert normalize(raw) == digits
    assert display(digits) == shown


@pytest.mark.parametrize("raw", ["", "abc", "010-12a4-5678", "1" * 20])
def test_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(PhoneNumberError):
        normalize(raw)


def test_mobile_prefixes() -> None:
    assert is_mobile("01012345678") and is_mobile("0161234567")
    assert not is_mobile("0212345678") and not is_mobile("01512345678")
