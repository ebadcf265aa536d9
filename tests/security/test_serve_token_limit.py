"""Clients ask for what they like (Claude Code asks for 32000 tokens on every request); with
`--max-tokens-limit N` no request of any API generates more than N, and the reply says it
was cut (finish_reason length, status incomplete, stop_reason max_tokens)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.conftest import run_flashcode
from tests.security.conftest import HI


def test_no_api_generates_past_the_limit(serve):
    srv = serve(max_tokens_limit=3, max_tokens_default=50)
    oc = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=120)
    chat = oc.chat.completions.create(model="tiny", messages=HI, max_tokens=500)
    assert chat.usage.completion_tokens <= 3 and chat.choices[0].finish_reason == "length"
    default = oc.chat.completions.create(model="tiny", messages=HI)  # the default, limited
    assert default.usage.completion_tokens <= 3
    resp = oc.responses.create(model="tiny", input="hi", max_output_tokens=500)
    assert resp.usage.output_tokens <= 3 and resp.status == "incomplete"
    ac = anthropic.Anthropic(base_url=srv.url.removesuffix("/v1"), api_key="unused",
                             max_retries=0, timeout=120)
    msg = ac.messages.create(model="tiny", messages=HI, max_tokens=32000)
    assert msg.usage.output_tokens <= 3 and msg.stop_reason == "max_tokens"


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_serve_wants_a_positive_limit(tmp_path, value):
    out = run_flashcode("serve", "--model", str(tmp_path), "--max-tokens-limit", value)
    assert out.returncode == 2 and "at least 1" in out.stderr
