/** BERT / RoBERTa report encoders with LoRA, loaded from Hugging Face folders. */
export * from './config';
export * from './encoder';
export * from './pretrained';
