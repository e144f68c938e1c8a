"""Tiny sentence-transformers models whose tokenizers are trained here, on text of nine
scripts, for the vocabulary-pruning tests: WordPiece (BERT), Unigram (XLM-RoBERTa, as
multilingual-e5 and paraphrase-multilingual-MiniLM have) and byte-level BPE (RoBERTa).
Weights are random, with a large initialiser range so that different texts get clearly
different vectors (a test comparing vectors can then fail)."""

from __future__ import annotations

import json
from pathlib import Path

# a few sentences per script: training text for the tokenizers and test text
TEXTS = {
    "latin": ["the children walked to school in the morning",
              "she bought fresh bread and milk at the market",
              "le chat dort sur la chaise près de la fenêtre",
              "der Zug fährt um neun Uhr nach München",
              "el niño come una manzana roja en el jardín"],
    "cyrillic": ["дети шли в школу утром", "она купила свежий хлеб и молоко на рынке",
                 "мы планируем поехать на море летом", "поезд отправляется в девять часов"],
    "greek": ["τα παιδιά πήγαν στο σχολείο το πρωί", "η γάτα κοιμάται στην καρέκλα",
              "το τρένο φεύγει στις εννέα"],
    "arabic": ["ذهب الأطفال إلى المدرسة في الصباح", "اشترت خبزا طازجا وحليبا من السوق",
               "يبدأ الاجتماع في الساعة العاشرة"],
    "hebrew": ["הילדים הלכו לבית הספר בבוקר", "היא קנתה לחם טרי וחלב בשוק",
               "הרכבת יוצאת בשעה תשע"],
    "devanagari": ["बच्चे सुबह स्कूल गए", "उसने बाजार से ताज़ी रोटी और दूध खरीदा",
                   "ट्रेन नौ बजे निकलती है"],
    "cjk": ["孩子们早上去上学", "她在市场买了新鲜的面包和牛奶",
            "東京タワーの高さは三百三十メートルです", "電車は九時に出発します",
            "아이들은 아침에 학교에 갔다", "기차는 아홉 시에 출발한다"],
    "thai": ["เด็กๆ ไปโรงเรียนตอนเช้า", "เธอซื้อขนมปังสดและนมที่ตลาด", "รถไฟออกเวลาเก้าโมง"],
}
NUMBERS = ["in 2024 the price rose 15% to 3.50", "call 555-0142 before 10:30"]
SPECIALS = {  # family → (tokens in id order, pad token)
    "bert": (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[PAD]"),
    "roberta": (["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<pad>"),
    "xlm-roberta": (["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<pad>"),
}
KINDS = {"bert": "WordPiece", "roberta": "BPE", "xlm-roberta": "Unigram"}
HIDDEN = 32


def training_texts() -> list[str]:
    texts = [text for group in TEXTS.values() for text in group] + NUMBERS
    return texts * 20


def train_tokenizer(family: str):
    """A `tokenizers.Tokenizer` of the family's kind, trained on `training_texts()`."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    specials, _ = SPECIALS[family]
    if family == "bert":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=900, special_tokens=specials)
    elif family == "roberta":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=900, special_tokens=specials,
                                          unk_token="<unk>")
    tokenizer.train_from_iterator(training_texts(), trainer)
    if family == "bert":
        tokenizer.post_processor = processors.BertProcessing(
            ("[SEP]", tokenizer.token_to_id("[SEP]")), ("[CLS]", tokenizer.token_to_id("[CLS]")))
    else:
        tokenizer.post_processor = processors.RobertaProcessing(
            ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")))
    return tokenizer


def build_model(family: str, folder: Path, layers: int = 2) -> Path:
    """Save a tiny sentence-transformers model of `family` (mean pooling, normalised)."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaModel,
        XLMRobertaTokenizerFast,
    )

    tokenizer = train_tokenizer(family)
    specials, pad = SPECIALS[family]
    config_class, model_class, fast_class = {
        "bert": (BertConfig, BertModel, BertTokenizerFast),
        "roberta": (RobertaConfig, RobertaModel, RobertaTokenizerFast),
        "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast),
    }[family]
    offset = 0 if family == "bert" else 2  # RoBERTa's positions start after the pad id
    config = config_class(vocab_size=tokenizer.get_vocab_size(), hidden_size=HIDDEN,
                          num_hidden_layers=layers, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=128 + offset,
                          pad_token_id=tokenizer.token_to_id(pad), initializer_range=0.5,
                          **({} if family == "bert" else {"bos_token_id": 0, "eos_token_id": 2}))
    torch.manual_seed(0)
    model = model_class(config, add_pooling_layer=False).eval()
    hf = folder / "hf"
    model.save_pretrained(str(hf))
    fast = fast_class(tokenizer_object=tokenizer, model_max_length=128,
                      **({"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                          "sep_token": "[SEP]", "mask_token": "[MASK]"} if family == "bert"
                         else {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                               "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
                               "mask_token": "<mask>"}))
    fast.save_pretrained(str(hf))
    assert [tokenizer.token_to_id(token) for token in specials] == list(range(len(specials)))
    # the classic sentence-transformers layout (as on the Hub), written out here
    output = folder / family
    hf.rename(output)
    (output / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}]))
    (output / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": 128, "do_lower_case": False}))
    (output / "1_Pooling").mkdir()
    (output / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}))
    (output / "2_Normalize").mkdir()
    return output
