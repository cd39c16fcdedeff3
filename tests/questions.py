"""Texts several test suites share."""

#: Ten unrelated programming and general questions: enough neighbours for the verifier's
#: neighbourhood features, with "How do I sort a list in Python?" first.
TEN_QUESTIONS = [
    "How do I sort a list in Python?",
    "What is the capital of France?",
    "How do I read a file line by line in Python?",
    "What is a closure in JavaScript?",
    "How do I start a goroutine in Go?",
    "What is the difference between a process and a thread?",
    "How do I merge two dictionaries in Python?",
    "What does HTTP status 404 mean?",
    "How do I undo the last git commit?",
    "What is the time complexity of binary search?",
]
