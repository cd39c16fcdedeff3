from modelcache.messages import Message, build_key, normalize_text, text_length

SYSTEM = Message("system", "You are a helpful assistant.")


def conv(*pairs: tuple[str, str]) -> list[Message]:
    return [Message(role, content) for role, content in pairs]


def test_question_is_the_last_user_turn_and_is_all_that_is_embedded():
    key = build_key([SYSTEM, Message("user", "  Who are you?  ")])
    assert key.question == "Who are you?"
    assert key.context == (SYSTEM,)


def test_same_question_under_another_system_prompt_has_another_context():
    a = build_key([SYSTEM, Message("user", "Who are you?")])
    b = build_key([Message("system", "You are a pirate."), Message("user", "Who are you?")])
    assert a.context_hash != b.context_hash
    assert a.key_hash != b.key_hash


def test_follow_up_after_another_conversation_has_another_context():
    first = conv(
        ("user", "Who is Barack Obama?"), ("assistant", "A US president."), ("user", "How old is he?")
    )
    other = conv(("user", "Who is Taylor Swift?"), ("assistant", "A singer."), ("user", "How old is he?"))
    assert build_key(first).context_hash != build_key(other).context_hash


def test_assistant_turns_are_left_out_unless_asked_for():
    one = conv(("user", "Who is Obama?"), ("assistant", "A president."), ("user", "How old is he?"))
    two = conv(("user", "Who is Obama?"), ("assistant", "The 44th president."), ("user", "How old is he?"))
    assert build_key(one).key_hash == build_key(two).key_hash
    assert build_key(one, include_assistant=True).key_hash != build_key(two, include_assistant=True).key_hash


def test_normalisation_ignores_case_width_and_spacing():
    a = build_key([Message("system", "Be  brief."), Message("user", "WHAT is  ＡＩ?")])
    b = build_key([Message("system", "be brief."), Message("user", "what is AI?")])
    assert a.key_hash == b.key_hash
    assert normalize_text(" A\tB\n") == "a b"


def test_no_context_is_its_own_context():
    assert (
        build_key([Message("user", "hi")]).context_hash
        != build_key([SYSTEM, Message("user", "hi")]).context_hash
    )


def test_text_length_counts_cjk_characters_and_words():
    assert text_length("你是谁?") == 3
    assert text_length("What is the capital of France?") == 6
    assert text_length("用 Python 写快速排序") == 7
    assert text_length("") == 0
