"""Conversations kept for follow-up questions are bounded in bytes (their pictures), not only in count."""

from __future__ import annotations

import numpy as np
from PIL import Image

from anomalens.language import ChatImages, ChatSession
from anomalens.service import Conversations
from anomalens.service.conversations import picture_bytes
from test_language import findings


def session(side: int) -> ChatSession:
    picture = Image.new("RGB", (side, side))
    return ChatSession(findings([(150, 150, 20)]), images=ChatImages(np.zeros((side, side, 3), np.uint8), picture))


def test_the_oldest_conversations_go_when_their_pictures_pass_the_byte_bound():
    big = session(512)  # 2 × 786 KB of pictures
    assert picture_bytes(big) == 2 * 512 * 512 * 3
    store = Conversations(max_count=100, max_bytes=4 * 2**20)
    for i in range(10):
        store.add(f"c{i}", session(512))
    assert store.bytes <= 4 * 2**20 and len(store) == 2
    assert store.get("c0") is None and store.get("c9") is not None


def test_the_count_bound_still_holds_for_small_pictures():
    store = Conversations(max_count=3)
    for i in range(5):
        store.add(f"c{i}", session(8))
    assert len(store) == 3 and store.get("c1") is None and store.get("c4") is not None
