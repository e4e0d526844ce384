"""``models.CharLM`` and ``models.SentimentClassifier`` in torch, around their exported parts.

Each keeps our child names (``embedding``, ``rnn``, ``dropout``, ``decoder`` / ``classifier``), so the
state_dict keys are ours, and computes what ours computes:

    CharLM:               logits (T, N, V) = decoder(dropout(rnn(embedding(ids), state).output)), state
    SentimentClassifier:  logits (N, 2) = classifier(h_n of the last layer (N, H)), over each row's length

ids are int64 torch tensors ((T, N) for CharLM, (N, T) for the classifier).
"""
import torch

__all__ = ["TorchCharLM", "TorchSentimentClassifier"]


class TorchCharLM(torch.nn.Module):
    """``forward(ids (T, N), state=None) -> (logits (T, N, V), state)``."""

    def __init__(self, embedding, rnn, dropout, decoder):
        super().__init__()
        self.embedding, self.rnn, self.dropout, self.decoder = embedding, rnn, dropout, decoder

    def forward(self, ids, state=None):
        outputs, state = self.rnn(self.embedding(ids), state)
        return self.decoder(self.dropout(outputs)), state


class TorchSentimentClassifier(torch.nn.Module):
    """``forward(ids (N, T), lengths=None) -> logits (N, 2)``."""

    def __init__(self, embedding, rnn, classifier):
        super().__init__()
        self.embedding, self.rnn, self.classifier = embedding, rnn, classifier

    def forward(self, ids, lengths=None):
        h_n = self.rnn(self.embedding(ids), lengths=lengths)[1]
        return self.classifier((h_n if isinstance(h_n, torch.Tensor) else h_n[0])[-1])
