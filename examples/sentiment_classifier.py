"""Many-to-one: an LSTM reads a whole sentence and one linear layer on its final hidden state says
whether the sentence is positive or negative.

The built-in sentiment set (tinygrad_rnn.data.sentiment) is written so that word order decides the
label: "it was not good but bad" is negative and "it was good but not bad" positive, with the same
words. A bag of words cannot tell them apart; the recurrent classifier reaches 100% test accuracy.
Each sentence is read only up to its own length (``lengths``), so the padding never matters.

Run:  python examples/sentiment_classifier.py        (a few seconds)
"""
import time

import numpy as np

import tinygrad_rnn.data as data
from tinygrad_rnn.data import sentiment
from tinygrad_rnn.models import SentimentClassifier
from tinygrad_rnn.train import train_sentiment

started = time.perf_counter()
vocab = data.load_sentiment("train").vocab
model = SentimentClassifier(len(vocab), embedding_dim=16, hidden_size=32, cell="lstm")
accuracy = train_sentiment(5, model=model)
print(f"test accuracy {accuracy:.1%} in {time.perf_counter() - started:.0f} s\n")

pairs = ["it was not good but bad", "it was good but not bad",
         "the plot wasn't very dull", "the plot was very dull",
         "this is never boring but really awful", "this is really awful but never boring"]
ids = [sentiment.encode(text) for text in pairs]
lengths = np.array([len(row) for row in ids])
padded = np.zeros((len(ids), lengths.max()), dtype=np.int64)
for row, sentence_ids in enumerate(ids):
    padded[row, :len(sentence_ids)] = sentence_ids
model.eval()
predicted = model(padded, lengths).data.argmax(axis=1)
print(f"{'sentence':40s} {'rule':>8s} {'model':>8s}")
names = {0: "negative", 1: "positive"}
for text, guess in zip(pairs, predicted):
    print(f"{text:40s} {names[sentiment.label(text)]:>8s} {names[int(guess)]:>8s}")
