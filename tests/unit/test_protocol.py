import json

import pytest

from balto.app.protocol import (
    ChecklistFrame,
    ChecklistItemOut,
    CloseCode,
    CommandError,
    Conectado,
    ProtocolError,
    Recomendar,
    VadSettingsOut,
    audio_format,
    effective_policy,
    encode,
    parse_command,
    parse_feedback,
    parse_handshake,
)
from balto.domain.vad import VadPolicy


def test_the_specs_handshake_parses():
    h = parse_handshake(
        json.dumps({"api_key": "bk_x", "vad_settings": {"threshold_multiplier": 1.5, "min_energy": 50.0}})
    )
    assert h.api_key == "bk_x" and h.transcricao is False
    assert effective_policy(VadPolicy(), h) == VadPolicy(1.5, 50.0)


@pytest.mark.parametrize(
    ("text", "close", "code"),
    [
        ("not json", CloseCode.HANDSHAKE_INVALID, "handshake_invalido"),
        ("[1, 2]", CloseCode.HANDSHAKE_INVALID, "handshake_invalido"),
        ("{}", CloseCode.HANDSHAKE_INVALID, "handshake_invalido"),
        ('{"api_key": 1}', CloseCode.HANDSHAKE_INVALID, "handshake_invalido"),
        ('{"api_key": "k", "extra": 1}', CloseCode.HANDSHAKE_INVALID, "handshake_invalido"),
        ('{"api_key": "  "}', CloseCode.API_KEY_INVALID, "api_key_invalida"),
    ],
)
def test_bad_handshakes_map_to_documented_codes(text, close, code):
    with pytest.raises(ProtocolError) as info:
        parse_handshake(text)
    assert info.value.close_code == close and info.value.codigo == code


def test_bad_vad_settings_are_a_4422():
    h = parse_handshake('{"api_key": "k", "vad_settings": {"min_energy": "alto"}}')
    with pytest.raises(ProtocolError) as info:
        effective_policy(VadPolicy(), h)
    assert info.value.close_code == 4422 and "min_energy" in info.value.mensagem


def test_audio_formats():
    assert audio_format(parse_handshake('{"api_key": "k"}')).format == "auto"  # sniffed from the bytes
    pcm = audio_format(
        parse_handshake('{"api_key": "k", "audio": {"format": "pcm_s16le", "sample_rate": 48000, "channels": 2}}')
    )
    assert (pcm.format, pcm.sample_rate, pcm.channels) == ("pcm_s16le", 48000, 2)
    assert audio_format(parse_handshake('{"api_key": "k", "audio": {"format": "webm"}}')).format == "webm"
    for audio in (
        {"format": "mp3"},
        {"format": "pcm_s16le", "sample_rate": 4000},
        {"format": "pcm_s16le", "channels": 9},
    ):
        with pytest.raises(ProtocolError) as info:
            audio_format(parse_handshake(json.dumps({"api_key": "k", "audio": audio})))
        assert info.value.close_code == 4415


def test_server_frames_carry_comando():
    assert json.loads(encode(Recomendar("u1", ["a"], "llm"))) == {
        "comando": "recomendar",
        "interacao_id": "u1",
        "sugestoes": ["a"],
        "origem": "llm",
    }
    hello = json.loads(encode(Conectado("c", "B1", VadSettingsOut(1.5, 50.0), False)))
    assert hello["comando"] == "conectado" and hello["vad_settings"] == {
        "threshold_multiplier": 1.5,
        "min_energy": 50.0,
    }


def test_commands():
    assert parse_command('{"comando": "ping"}') == "ping"
    assert parse_command("garbage") is None
    assert parse_command('{"x": 1}') is None


def test_feedback_command_parses():
    command = parse_feedback('{"comando": "feedback", "interacao_id": "u1", "util": false}')
    assert (command.interacao_id, command.util, command.origem) == ("u1", False, None)
    assert parse_feedback('{"comando": "feedback", "interacao_id": "u1", "util": true, "origem": "playbook"}').origem


@pytest.mark.parametrize(
    "text",
    [
        '{"comando": "feedback", "util": true}',
        '{"comando": "feedback", "interacao_id": "u1"}',
        '{"comando": "feedback", "interacao_id": "u1", "util": "sim"}',
        '{"comando": "feedback", "interacao_id": "u1", "util": true, "origem": "humano"}',
        '{"comando": "feedback", "interacao_id": "u1", "util": true, "nota": 5}',
    ],
)
def test_bad_feedback_is_a_command_error_not_a_close(text):
    with pytest.raises(CommandError) as info:
        parse_feedback(text)
    assert info.value.codigo == "feedback_invalido"


def test_checklist_frame():
    frame = ChecklistFrame("conv", [ChecklistItemOut("cpf_nota", "Pedir o CPF na nota", True)], False, "u1")
    assert json.loads(encode(frame)) == {
        "comando": "checklist",
        "conversa_id": "conv",
        "itens": [{"id": "cpf_nota", "texto": "Pedir o CPF na nota", "feito": True}],
        "encerrada": False,
        "interacao_id": "u1",
    }
